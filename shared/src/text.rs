//! Rules for user-supplied text that is shown to people (emails, names, titles). A leaf module.

use unicode_normalization::UnicodeNormalization;

/// NFKC: compatibility forms fold to one spelling (fullwidth `Ａ` is `A`, the `ﬁ` ligature is `fi`),
/// so two strings that look the same compare the same.
pub fn nfkc(s: &str) -> String {
    s.nfkc().collect()
}

/// Whether `s` holds characters that are invisible or rewrite how the text around them shows:
/// controls (Unicode category Cc) and format characters (Cf: bidi overrides and isolates,
/// zero-width spaces and joiners, the byte-order mark, soft hyphens, tag characters…).
pub fn has_hidden_characters(s: &str) -> bool {
    s.chars().any(is_hidden)
}

/// A control or format character (see [`has_hidden_characters`]).
pub fn is_hidden(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// Unicode general category Cf (Unicode 15).
fn is_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD
        | 0x0600..=0x0605
        | 0x061C
        | 0x06DD
        | 0x070F
        | 0x0890..=0x0891
        | 0x08E2
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0001
        | 0xE0020..=0xE007F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_found() {
        for bad in [
            "a\u{202E}b",  // right-to-left override
            "a\u{2066}b",  // left-to-right isolate
            "a\u{200B}b",  // zero-width space
            "a\u{200D}b",  // zero-width joiner
            "\u{FEFF}ab",  // byte-order mark
            "a\u{00AD}b",  // soft hyphen
            "a\u{E0041}b", // tag character
            "a\u{7}b",     // bell
            "a\nb",
        ] {
            assert!(has_hidden_characters(bad), "{bad:?}");
        }
        for good in ["Ada Lovelace", "Zoë", "日本語", "émoji 🚀", "a-b_c.d"] {
            assert!(!has_hidden_characters(good), "{good:?}");
        }
    }

    #[test]
    fn compatibility_forms_fold() {
        assert_eq!(nfkc("Ａｄａ"), "Ada");
        assert_eq!(nfkc("ﬁle"), "file");
        assert_eq!(nfkc("e\u{301}"), "é");
    }
}
