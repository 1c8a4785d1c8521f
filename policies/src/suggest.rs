//! "Did you mean ...?" for misspelt keys, data groups, stores and zones.

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a typo rather than a different word: at most a third of the
/// word's length (and at least one edit) away, or sharing its first five
/// letters (Indonesian spellings of English keys, `verifikasi` for
/// `verification`, differ in their endings). Ties go to the first
/// candidate, so callers list the likelier ones first.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    let same_stem = |c: &str| {
        let shared = word_lower
            .chars()
            .zip(c.chars())
            .take_while(|(a, b)| a == b)
            .count();
        shared >= 5
    };
    candidates
        .into_iter()
        .map(|c| (levenshtein(&word_lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= limit || same_stem(&c.to_lowercase()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `x`?`, or `None` when nothing is close.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Levenshtein distance over characters (insert, delete, substitute).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("retension", "retention"), 1);
        assert_eq!(levenshtein("same", "same"), 0);
    }

    #[test]
    fn suggests_close_words_only() {
        let keys = ["retention", "retention_schedule", "rpo"];
        assert_eq!(closest("retension", keys), Some("retention"));
        assert_eq!(closest("RPO", keys), Some("rpo"));
        assert_eq!(closest("bandwidth", keys), None);
        assert_eq!(
            closest("verifikasi", ["schedule", "verification"]),
            Some("verification")
        );
        assert_eq!(
            closest("replikasi", ["replication", "retention"]),
            Some("replication")
        );
        assert_eq!(
            did_you_mean("kependudukn", ["kesehatan", "kependudukan"]).as_deref(),
            Some("did you mean `kependudukan`?")
        );
    }
}
