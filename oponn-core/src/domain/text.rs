//! Measures, option labels and write-ins: the user-written text of a ballot.

use unicode_normalization::UnicodeNormalization;

use super::validation::{Field, FieldError, messages};

/// Shortest measure, in characters after trimming.
pub const MEASURE_MIN_CHARS: usize = 3;
/// Longest measure, in characters after trimming.
pub const MEASURE_MAX_CHARS: usize = 255;
/// Longest option label or write-in, in characters.
pub const LABEL_MAX_CHARS: usize = 64;
/// Most options a ballot may be created with.
pub const MAX_OPTIONS: usize = 64;

/// The question a ballot puts to its voters: 3 to 255 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure(String);

impl Measure {
    /// Trims `raw` and checks its length.
    ///
    /// # Errors
    /// A [`Field::Measure`] error when it is shorter than 3 or longer than 255 characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        match trimmed.chars().count() {
            n if n < MEASURE_MIN_CHARS => {
                Err(FieldError::new(Field::Measure, messages::MEASURE_TOO_SHORT))
            }
            n if n > MEASURE_MAX_CHARS => {
                Err(FieldError::new(Field::Measure, messages::MEASURE_TOO_LONG))
            }
            _ => Ok(Self(trimmed.to_owned())),
        }
    }

    /// The measure's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text of one option: trimmed, 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionLabel(String);

impl OptionLabel {
    /// Trims `raw` and checks its length.
    ///
    /// # Errors
    /// A [`Field::Options`] error when it is empty or longer than 64 characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > LABEL_MAX_CHARS {
            return Err(FieldError::new(Field::Options, messages::OPTION_LENGTH));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Wraps text that was validated when it was first stored.
    pub(crate) fn trusted(text: String) -> Self {
        Self(text)
    }

    /// The label's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two labels are compared in; see [`comparison_key`].
    pub fn comparison_key(&self) -> String {
        comparison_key(&self.0)
    }
}

/// A voter's own option: trimmed, inner whitespace collapsed, 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteIn(String);

impl WriteIn {
    /// Trims `raw`, collapses runs of whitespace to one space and checks the length.
    ///
    /// # Errors
    /// A [`Field::WriteIn`] error when nothing is left or it is longer than 64 characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let collapsed = collapse_whitespace(raw);
        match collapsed.chars().count() {
            0 => Err(FieldError::new(Field::WriteIn, messages::WRITE_IN_REQUIRED)),
            n if n > LABEL_MAX_CHARS => {
                Err(FieldError::new(Field::WriteIn, messages::WRITE_IN_TOO_LONG))
            }
            _ => Ok(Self(collapsed)),
        }
    }

    /// The write-in's text as it will be shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two labels are compared in; see [`comparison_key`].
    pub fn comparison_key(&self) -> String {
        comparison_key(&self.0)
    }

    /// The write-in as an option label, for when it creates a new option.
    pub fn into_label(self) -> OptionLabel {
        OptionLabel(self.0)
    }
}

/// Splits the create form's option text on commas and newlines.
///
/// Each piece is trimmed and blank pieces are dropped, so a trailing comma or
/// an empty line is not an error.
pub fn split_option_text(raw: &str) -> Vec<String> {
    raw.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The form in which two labels are equal when a voter would call them equal.
///
/// Unicode compatibility normalization (NFKC) first, so that full-width or
/// composed forms meet their plain twins; then whitespace collapsed and case
/// folded. Predefined options must be unique under this key, and a write-in
/// counts toward the option whose key it shares.
pub fn comparison_key(text: &str) -> String {
    let normalized: String = text.nfkc().collect();
    collapse_whitespace(&normalized).to_lowercase()
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text_of_len(len: usize) -> String {
        "é".repeat(len)
    }

    #[test]
    fn measure_boundaries_count_characters_not_bytes() {
        assert!(Measure::parse(&text_of_len(2)).is_err());
        assert!(Measure::parse(&text_of_len(3)).is_ok());
        assert!(Measure::parse(&text_of_len(255)).is_ok());
        assert_eq!(
            Measure::parse(&text_of_len(256)).unwrap_err().message(),
            messages::MEASURE_TOO_LONG
        );
        assert_eq!(
            Measure::parse("  ab  ").unwrap_err().message(),
            messages::MEASURE_TOO_SHORT
        );
    }

    #[test]
    fn write_in_collapses_inner_whitespace() {
        let write_in = WriteIn::parse("  deep \t  dish\n pizza ").unwrap();
        assert_eq!(write_in.as_str(), "deep dish pizza");
        assert_eq!(
            WriteIn::parse(" \t ").unwrap_err().message(),
            messages::WRITE_IN_REQUIRED
        );
    }

    #[test]
    fn comparison_key_ignores_case_width_and_composition() {
        assert_eq!(comparison_key("Pizza"), comparison_key("pIZZA"));
        // Full-width letters normalize to ASCII under NFKC.
        assert_eq!(comparison_key("Ｐｉｚｚａ"), comparison_key("pizza"));
        // "é" precomposed and as "e" + combining acute accent.
        assert_eq!(comparison_key("caf\u{e9}"), comparison_key("cafe\u{301}"));
        assert_ne!(comparison_key("pizza"), comparison_key("pizzas"));
    }

    #[test]
    fn option_text_splits_on_commas_and_newlines() {
        assert_eq!(
            split_option_text("aye, nay\nabstain,\r\n ,"),
            vec!["aye", "nay", "abstain"]
        );
    }

    proptest! {
        #[test]
        fn measure_accepts_exactly_3_to_255_chars(len in 0usize..300, pad in 0usize..4) {
            let raw = format!("{}{}{}", " ".repeat(pad), "x".repeat(len), " ".repeat(pad));
            let accepted = Measure::parse(&raw).is_ok();
            prop_assert_eq!(accepted, (MEASURE_MIN_CHARS..=MEASURE_MAX_CHARS).contains(&len));
        }

        #[test]
        fn option_label_accepts_exactly_1_to_64_chars(len in 0usize..100) {
            let accepted = OptionLabel::parse(&"ø".repeat(len)).is_ok();
            prop_assert_eq!(accepted, (1..=LABEL_MAX_CHARS).contains(&len));
        }

        #[test]
        fn write_in_accepts_exactly_1_to_64_chars_after_collapsing(
            words in proptest::collection::vec("[a-zA-Z]{1,8}", 0..12),
            gap in "[ \t\n]{1,3}",
        ) {
            let raw = format!("{gap}{}{gap}", words.join(&gap));
            let expected = words.join(" ");
            match WriteIn::parse(&raw) {
                Ok(write_in) => {
                    prop_assert_eq!(write_in.as_str(), expected.as_str());
                    prop_assert!((1..=LABEL_MAX_CHARS).contains(&expected.chars().count()));
                }
                Err(error) => {
                    let len = expected.chars().count();
                    prop_assert!(len == 0 || len > LABEL_MAX_CHARS);
                    prop_assert_eq!(error.field(), Field::WriteIn);
                }
            }
        }

        #[test]
        fn comparison_key_is_idempotent_and_case_blind(text in "[a-zA-Z0-9à-þ \t]{0,40}") {
            let key = comparison_key(&text);
            prop_assert_eq!(comparison_key(&key), key.clone());
            prop_assert_eq!(comparison_key(&text.to_uppercase()), comparison_key(&text.to_lowercase()));
        }
    }
}
