//! Pages: `PageId`, `TxnId`, the 32-byte header every page starts with, and its CRC-32.
//! Layout and checksum scope: docs/design/btree-format.md, "Page header".
//!
//! Encoders assert what they write (a bug in keel otherwise); decoders verify what they read
//! and return a typed [`Corruption`] (the world), never panic.

use std::fmt;

use crate::error::Corruption;

/// Index of a page in the page file; its bytes are at `id * page_size_bytes`. Pages 0 and 1
/// are the meta pages, so a stored 0 can mean "none" wherever a non-meta page is expected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageId(pub u64);

impl PageId {
    /// The first page that is not a meta page.
    pub const FIRST_DATA: PageId = PageId(2);

    /// Byte offset of the page in a file of `page_size_bytes` pages.
    pub fn offset_bytes(self, page_size_bytes: usize) -> u64 {
        self.0 * page_size_bytes as u64
    }
}

impl fmt::Display for PageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Id of a checkpoint: the durable commit that wrote a meta page. Grows by one per checkpoint;
/// a new file's meta pages hold 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(pub u64);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Bytes of the header at the start of every page (the first page of a blob run included).
pub(crate) const HEADER_BYTES: usize = 32;

/// Format version written in every page header and the meta page. See "Version changes" in
/// docs/design/btree-format.md.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Smallest and largest page size: at 512 bytes a leaf still holds 4 entries of 120 bytes;
/// offsets inside a page are u16 and 65536 is the largest size whose offsets fit.
pub(crate) const PAGE_SIZE_BYTES_MIN: usize = 512;
pub(crate) const PAGE_SIZE_BYTES_MAX: usize = 65536;

const _: () = assert!(PAGE_SIZE_BYTES_MIN.is_power_of_two());
const _: () = assert!(PAGE_SIZE_BYTES_MAX.is_power_of_two());
const _: () = assert!(
    PAGE_SIZE_BYTES_MAX - 1 <= u16::MAX as usize,
    "offsets fit u16"
);
const _: () = assert!(
    PAGE_SIZE_BYTES_MIN.is_multiple_of(8),
    "values are 8-aligned in a page"
);

/// Whether `page_size_bytes` is a page size keel can use.
pub(crate) fn page_size_valid(page_size_bytes: usize) -> bool {
    page_size_bytes.is_power_of_two()
        && (PAGE_SIZE_BYTES_MIN..=PAGE_SIZE_BYTES_MAX).contains(&page_size_bytes)
}

/// Offset of the kind byte in the header.
pub(crate) const KIND_AT: usize = 4;

/// What a page holds (header byte 4). 0 is never a kind: a zeroed page is never valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PageKind {
    Meta = 1,
    Leaf = 2,
    Branch = 3,
    FreeList = 4,
    Blob = 5,
}

impl PageKind {
    fn from_u8(byte: u8) -> Option<PageKind> {
        match byte {
            1 => Some(PageKind::Meta),
            2 => Some(PageKind::Leaf),
            3 => Some(PageKind::Branch),
            4 => Some(PageKind::FreeList),
            5 => Some(PageKind::Blob),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            PageKind::Meta => "meta",
            PageKind::Leaf => "leaf",
            PageKind::Branch => "branch",
            PageKind::FreeList => "free list",
            PageKind::Blob => "blob",
        }
    }
}

/// The decoded page header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: PageKind,
    /// Entries (node), runs (free list); 0 for meta and blob pages.
    pub(crate) count: u16,
    pub(crate) page: PageId,
    pub(crate) txn: TxnId,
    /// Branch: leftmost child; free list: next free-list page (0 = last); blob: payload length
    /// in bytes; leaf and meta: 0.
    pub(crate) aux: u64,
}

/// Writes `header` into the first [`HEADER_BYTES`] of `page`; the checksum is left to
/// [`seal`].
pub(crate) fn header_encode(page: &mut [u8], header: &Header) {
    assert!(page.len() >= HEADER_BYTES, "a page holds its header");
    page[0..4].fill(0);
    page[4] = header.kind as u8;
    page[5] = FORMAT_VERSION;
    page[6..8].copy_from_slice(&header.count.to_le_bytes());
    page[8..16].copy_from_slice(&header.page.0.to_le_bytes());
    page[16..24].copy_from_slice(&header.txn.0.to_le_bytes());
    page[24..32].copy_from_slice(&header.aux.to_le_bytes());
}

/// Stores the CRC-32 of `covered[4..]` in `covered[0..4]`. `covered` is the whole page, or for a
/// blob its header plus payload.
pub(crate) fn seal(covered: &mut [u8]) {
    let crc = crc32fast::hash(&covered[4..]);
    covered[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Verifies the checksum of `covered` (see [`seal`]) and decodes its header, which must be of
/// `kind` and name `page`.
pub(crate) fn verify(covered: &[u8], kind: PageKind, page: PageId) -> Result<Header, Corruption> {
    verify_kinds(covered, &[kind], page)
}

/// [`verify`] for a page that may be of any of `kinds` (a node: leaf or branch).
pub(crate) fn verify_kinds(
    covered: &[u8],
    kinds: &[PageKind],
    page: PageId,
) -> Result<Header, Corruption> {
    if covered.len() < HEADER_BYTES {
        return Err(Corruption::Layout("page shorter than its header"));
    }
    let stored = read_u32(covered, 0)?;
    let computed = crc32fast::hash(&covered[4..]);
    if stored != computed {
        return Err(Corruption::Checksum { stored, computed });
    }
    let header = header_decode(covered)?;
    if !kinds.contains(&header.kind) {
        return Err(Corruption::Kind {
            expected: kinds[0].name(),
            found: header.kind as u8,
        });
    }
    if header.page != page {
        return Err(Corruption::MisplacedPage {
            found: header.page.0,
        });
    }
    Ok(header)
}

/// Decodes a header without checking the checksum (callers verify first, or re-read a page
/// that was verified before).
pub(crate) fn header_decode(bytes: &[u8]) -> Result<Header, Corruption> {
    let kind_byte = *bytes
        .get(4)
        .ok_or(Corruption::Layout("page shorter than its header"))?;
    let kind = PageKind::from_u8(kind_byte).ok_or(Corruption::Kind {
        expected: "a page kind",
        found: kind_byte,
    })?;
    let version = bytes[5];
    if version != FORMAT_VERSION {
        return Err(Corruption::Version { found: version });
    }
    Ok(Header {
        kind,
        count: read_u16(bytes, 6)?,
        page: PageId(read_u64(bytes, 8)?),
        txn: TxnId(read_u64(bytes, 16)?),
        aux: read_u64(bytes, 24)?,
    })
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> Result<u16, Corruption> {
    let raw = bytes
        .get(at..at + 2)
        .ok_or(Corruption::Layout("field beyond the page"))?;
    Ok(u16::from_le_bytes([raw[0], raw[1]]))
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Result<u32, Corruption> {
    let raw = bytes
        .get(at..at + 4)
        .ok_or(Corruption::Layout("field beyond the page"))?;
    Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Result<u64, Corruption> {
    let raw = bytes
        .get(at..at + 8)
        .ok_or(Corruption::Layout("field beyond the page"))?;
    let mut out = [0u8; 8];
    out.copy_from_slice(raw);
    Ok(u64::from_le_bytes(out))
}

pub(crate) fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn write_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Pages a blob of `len_bytes` occupies: its header and payload, contiguous.
pub(crate) fn blob_pages(len_bytes: u64, page_size_bytes: usize) -> u64 {
    // Saturating: a length read from a damaged page may be anything.
    (HEADER_BYTES as u64)
        .saturating_add(len_bytes)
        .div_ceil(page_size_bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_leaf() -> Vec<u8> {
        let mut page = vec![0u8; 512];
        let header = Header {
            kind: PageKind::Leaf,
            count: 3,
            page: PageId(9),
            txn: TxnId(4),
            aux: 0,
        };
        header_encode(&mut page, &header);
        page[100] = 7;
        seal(&mut page);
        page
    }

    // The checksum covers everything after itself: any flipped bit is caught, including one
    // in the header's page id (a misdirected write) or in the body.
    #[test]
    fn any_flipped_bit_after_the_checksum_fails_verification() {
        let page = sealed_leaf();
        verify(&page, PageKind::Leaf, PageId(9)).expect("sealed page verifies");
        for byte in [4usize, 8, 16, 24, 100, 511] {
            let mut bad = page.clone();
            bad[byte] ^= 0x10;
            assert!(
                matches!(
                    verify(&bad, PageKind::Leaf, PageId(9)),
                    Err(Corruption::Checksum { .. })
                ),
                "byte {byte}"
            );
        }
    }

    // A valid page read where another page was expected (a lost or misdirected write) is an
    // error, as is a valid page of another kind.
    #[test]
    fn a_valid_page_at_the_wrong_place_or_of_the_wrong_kind_is_rejected() {
        let page = sealed_leaf();
        assert_eq!(
            verify(&page, PageKind::Leaf, PageId(10)),
            Err(Corruption::MisplacedPage { found: 9 })
        );
        assert!(matches!(
            verify(&page, PageKind::Branch, PageId(9)),
            Err(Corruption::Kind { found: 2, .. })
        ));
    }

    #[test]
    fn blob_pages_count_the_header() {
        assert_eq!(blob_pages(0, 512), 1);
        assert_eq!(blob_pages(480, 512), 1);
        assert_eq!(blob_pages(481, 512), 2);
        assert_eq!(blob_pages(1536 * 1024, 4096), 385);
    }
}
