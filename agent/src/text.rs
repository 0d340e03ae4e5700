//! Text from elsewhere (Docker, hooks, the host) bounded in size before it is shown or sent.

/// Cuts `text` to at most `max` bytes, on a character boundary; whether anything was cut.
pub(crate) fn truncate(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary() {
        let mut text = "aé".to_string();
        assert!(truncate(&mut text, 2));
        assert_eq!(text, "a");
        let mut short = "abc".to_string();
        assert!(!truncate(&mut short, 3));
        assert_eq!(short, "abc");
    }
}
