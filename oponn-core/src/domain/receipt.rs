//! Vote receipts: the short code each accepted vote gets, by which its
//! voter checks afterwards that the vote is in the published count.
//!
//! A receipt is random, so it says nothing about who voted, from where or
//! when; it is unique within its ballot (storage refuses a second use),
//! and a vote change retires the old one (it then reads as replaced).

use std::fmt;

use super::OptionId;

/// Characters in a receipt code.
pub const RECEIPT_CODE_CHARS: usize = 10;

/// The alphabet of receipt codes: Crockford's base 32, digits and capital
/// letters without I, L, O and U, so no two characters look alike. Each
/// character carries 5 random bits: a code carries 50.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The code of one vote's receipt: [`RECEIPT_CODE_CHARS`] characters of an
/// unambiguous alphabet, from 50 random bits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiptCode(String);

impl ReceiptCode {
    /// A fresh random code.
    pub fn generate() -> Self {
        let mut bytes = [0u8; RECEIPT_CODE_CHARS];
        crate::crypto::fill_random(&mut bytes);
        // The low 5 bits of each random byte: uniform over the alphabet.
        Self(
            bytes
                .iter()
                .map(|byte| char::from(ALPHABET[usize::from(byte & 0x1f)]))
                .collect(),
        )
    }

    /// A code as a person typed it: case, spaces and hyphens do not
    /// matter, and the look-alikes `O`, `I` and `L` read as `0`, `1`, `1`.
    /// `None` for anything that cannot be a code.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > RECEIPT_CODE_CHARS * 4 {
            return None;
        }
        let mut code = String::with_capacity(RECEIPT_CODE_CHARS);
        for character in text.chars() {
            let normal = match character.to_ascii_uppercase() {
                ' ' | '-' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            if !normal.is_ascii() || !ALPHABET.contains(&(normal as u8)) {
                return None;
            }
            code.push(normal);
        }
        (code.len() == RECEIPT_CODE_CHARS).then_some(Self(code))
    }

    /// The code's text: what the voter is shown and storage keeps.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReceiptCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ReceiptCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReceiptCode({})", self.0)
    }
}

/// Whether a receipt is in a ballot's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptStatus {
    /// The vote it was given for is counted.
    Counted,
    /// Its vote was changed later: a newer receipt stands for it.
    Replaced,
    /// No vote of this ballot had this receipt.
    Unknown,
}

impl ReceiptStatus {
    /// The stable name used in the API: `counted`, `replaced`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Counted => "counted",
            ReceiptStatus::Replaced => "replaced",
            ReceiptStatus::Unknown => "unknown",
        }
    }

    /// What a person checking the receipt is told.
    pub fn message(self) -> &'static str {
        match self {
            ReceiptStatus::Counted => "counted",
            ReceiptStatus::Replaced => "replaced by a later vote",
            ReceiptStatus::Unknown => "unknown",
        }
    }
}

/// One counted vote as a ballot's public bulletin lists it: its receipt
/// and its choice, nothing that leads to a voter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulletinRow {
    /// The vote's receipt.
    pub receipt: ReceiptCode,
    /// Its choice: one option, a set in id order, or a ranking in order.
    pub choice: Vec<OptionId>,
}

#[cfg(test)]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use super::{RECEIPT_CODE_CHARS, ReceiptCode};

    #[test]
    fn generated_codes_parse_back_and_differ() {
        let first = ReceiptCode::generate();
        assert_eq!(first.as_str().len(), RECEIPT_CODE_CHARS);
        assert_eq!(ReceiptCode::parse(first.as_str()), Some(first.clone()));
        assert_ne!(first, ReceiptCode::generate());
    }

    #[test]
    fn codes_are_read_as_people_type_them() {
        let code = ReceiptCode::parse("01ABC-DEFGH").unwrap();
        assert_eq!(code.as_str(), "01ABCDEFGH");
        assert_eq!(ReceiptCode::parse("oiabc defgh"), Some(code.clone()));
        assert_eq!(ReceiptCode::parse("OLabcdefgh"), Some(code));
    }

    #[test]
    fn anything_else_is_not_a_code() {
        for text in [
            "",
            "0123456789A",
            "012345678",
            "01234567U9",
            "0123456789\u{0}",
            "０１２３４５６７８９",
            &"-".repeat(100),
        ] {
            assert_eq!(ReceiptCode::parse(text), None, "{text:?}");
        }
    }
}
