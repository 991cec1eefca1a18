//! Command line + environment -> raw flag values -> [`Config`].

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::flags::{env_name, spec, Kind, Support, FLAGS};
use super::{Config, ConfigError};

/// Where a flag's value came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `--flag`.
    Cli,
    /// `ETCD_FLAG`.
    Env(String),
}

impl Origin {
    pub(crate) fn describe(&self, flag: &str) -> String {
        match self {
            Origin::Cli => format!("--{flag}"),
            Origin::Env(var) => var.clone(),
        }
    }
}

/// Values given explicitly, by flag name.
pub(crate) type RawValues = BTreeMap<&'static str, (String, Origin)>;

/// What the command line asks for.
#[derive(Debug)]
pub enum ParseOutcome {
    /// Run the server.
    Run(Box<Config>),
    /// Print this text (help or version) and exit 0.
    Print(String),
}

/// Parses `args` (without the program name) and the environment `env`.
pub fn parse_from<I, E>(args: I, env: E) -> Result<ParseOutcome, ConfigError>
where
    I: IntoIterator<Item = OsString>,
    E: IntoIterator<Item = (String, String)>,
{
    let args = normalize_go_style(args.into_iter().collect());
    let matches = command()
        .try_get_matches_from(std::iter::once(OsString::from("keel")).chain(args))
        .map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp => ConfigError::Usage(String::new()),
            _ => ConfigError::Usage(e.render().to_string().trim_end().to_string()),
        });
    let matches = match matches {
        Ok(m) => m,
        Err(ConfigError::Usage(msg)) if msg.is_empty() => {
            return Ok(ParseOutcome::Print(
                command().render_long_help().to_string(),
            ))
        }
        Err(e) => return Err(e),
    };
    if let Some(stray) = matches
        .get_many::<String>("args")
        .and_then(|mut v| v.next())
    {
        return Err(ConfigError::Usage(format!("'{stray}' is not a valid flag")));
    }
    let mut raw = RawValues::new();
    for spec in FLAGS {
        if let Some(v) = matches.get_one::<String>(spec.name) {
            raw.insert(spec.name, (v.clone(), Origin::Cli));
        }
    }
    let mut env_warnings = Vec::new();
    apply_env(&mut raw, env, &mut env_warnings)?;
    if let Some((v, origin)) = raw.get("version") {
        if parse_bool(v).map_err(|reason| value_error(&origin.describe("version"), v, reason))? {
            return Ok(ParseOutcome::Print(version_text()));
        }
    }
    let mut config = Config::from_raw(&raw)?;
    config.warnings.extend(env_warnings);
    Ok(ParseOutcome::Run(Box::new(config)))
}

/// The `--version` text: keel's version and the etcd API it speaks.
pub(crate) fn version_text() -> String {
    format!(
        "keel Version: {}\netcd API Version: {}\nGit SHA: {}\nRust OS/Arch: {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        crate::ETCD_API_VERSION,
        option_env!("KEEL_GIT_SHA").unwrap_or("Not provided"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

/// Go's flag package accepts `-name`; clap wants `--name`. Rewrite the single
/// dash form for names in the table (anything else is left for clap to reject).
fn normalize_go_style(args: Vec<OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            let Some(rest) = text.strip_prefix('-') else {
                return arg;
            };
            if rest.starts_with('-') || rest.is_empty() {
                return arg;
            }
            let name = rest.split('=').next().unwrap_or(rest);
            if spec(name).is_some() {
                OsString::from(format!("-{text}"))
            } else {
                arg
            }
        })
        .collect()
}

fn command() -> clap::Command {
    let mut cmd = clap::Command::new("keel")
        .about("keel: an etcd v3-compatible, strongly consistent key-value store")
        .override_usage("keel [flags]")
        .disable_version_flag(true)
        .max_term_width(100)
        .arg(
            clap::Arg::new("args")
                .num_args(0..)
                .hide(true)
                .trailing_var_arg(false)
                .value_parser(clap::value_parser!(String)),
        );
    for spec in FLAGS {
        let mut arg = clap::Arg::new(spec.name)
            .long(spec.name)
            .help(help_line(spec))
            .value_parser(clap::value_parser!(String))
            .hide(spec.support == Support::EtcdIgnored);
        arg = match spec.kind {
            Kind::Bool => arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .value_name("true|false"),
            _ => arg
                .num_args(1)
                .allow_hyphen_values(false)
                .value_name(value_name(spec.kind)),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

fn help_line(spec: &super::flags::FlagSpec) -> String {
    let default = if spec.default.is_empty() {
        String::new()
    } else {
        format!(" [default: {}]", spec.default)
    };
    let support = match spec.support {
        Support::NotYet(why) => format!(" (accepted, not acted on yet: {why})"),
        _ => String::new(),
    };
    format!(
        "{}{default}{support} [env: {}]",
        spec.help,
        env_name(spec.name)
    )
}

fn value_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "bool",
        Kind::Text => "string",
        Kind::Uint => "uint",
        Kind::Int => "int",
        Kind::Duration => "duration",
        Kind::Urls => "urls",
    }
}

/// etcd's SetFlagsFromEnv + verifyEnv rules.
fn apply_env<E>(raw: &mut RawValues, env: E, warnings: &mut Vec<String>) -> Result<(), ConfigError>
where
    E: IntoIterator<Item = (String, String)>,
{
    let env: BTreeMap<String, String> = env.into_iter().collect();
    let mut used = std::collections::BTreeSet::new();
    for spec in FLAGS {
        let var = env_name(spec.name);
        let Some(value) = env.get(&var) else { continue };
        used.insert(var.clone());
        if raw.contains_key(spec.name) {
            return Err(ConfigError::Usage(format!(
                "conflicting environment variable {var:?} is shadowed by corresponding \
                 command-line flag (either unset environment variable or disable flag)"
            )));
        }
        if value.is_empty() {
            continue;
        }
        raw.insert(spec.name, (value.clone(), Origin::Env(var)));
    }
    for var in env.keys() {
        if var.starts_with("ETCD_") && !used.contains(var) {
            warnings.push(format!("unrecognized environment variable {var}"));
        }
    }
    Ok(())
}

pub(crate) fn value_error(
    source_name: &str,
    value: &str,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Value {
        source_name: source_name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("not a boolean (true/false)".to_string()),
    }
}

/// Go's `time.ParseDuration` (units ns, us, µs, ms, s, m, h; fractions allowed).
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let bad = || format!("not a duration (e.g. 500ms, 5s, 2h45m): {text:?}");
    if text.is_empty() || text.starts_with('-') {
        return Err(bad());
    }
    let mut total_ns = 0f64;
    let mut rest = text.trim_start_matches('+');
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ns = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total_ns += number * unit_ns;
    }
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_nanos(total_ns as u64))
}
