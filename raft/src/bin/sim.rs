fn main() {
    println!("{}", keel_raft::sim::hello());
}
