//! "Did you mean" suggestions by edit distance.

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let budget = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= budget)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Edit distance where an insertion, a deletion, a substitution or a swap of two adjacent
/// characters costs one (the optimal-string-alignment distance): `stpes` is one edit from
/// `steps`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(did_you_mean("stpes", ["steps", "seed", "data"]), Some("steps"));
        assert_eq!(did_you_mean("optimiser", ["optimizer", "ema"]), Some("optimizer"));
        assert_eq!(did_you_mean("banana", ["steps", "seed"]), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("stpes", "steps"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
