//! The crate-wide parse / emit error.

use core::fmt;

/// Why a buffer could not be viewed as, or written as, a header.
///
/// Unknown field values (an unknown EtherType, an unknown ARP operation) are
/// *not* errors: they are data, represented by `Unknown(..)` variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field claims.
    Truncated,
    /// A field holds an impossible value (IPv4 IHL < 5, UDP length < 8, ...).
    Malformed,
    /// Well-formed but not handled here (ARP for something other than
    /// Ethernet/IPv4).
    Unsupported,
    /// The output buffer, or the headroom in front of a frame, is too small.
    NoRoom,
    /// The result would not fit its 16-bit length field.
    TooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated: buffer shorter than the header or its length field",
            Error::Malformed => "malformed: a header field holds an impossible value",
            Error::Unsupported => "unsupported: well-formed but not handled by this parser",
            Error::NoRoom => "no room: output buffer or headroom too small",
            Error::TooLong => "too long: length does not fit its 16-bit field",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Shorthand used by every view.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn display_says_what_went_wrong() {
        assert!(Error::Truncated.to_string().starts_with("truncated"));
        assert!(Error::NoRoom.to_string().contains("headroom"));
    }
}
