//! Named lists of test-image indices, compiled in: the thesis's code's evaluation subsets
//! (`subsets/README.md` says where they come from).

use crate::DatasetKind;

const MNIST: &str = include_str!("../subsets/mnist-test-subset.txt");
const CIFAR10: &str = include_str!("../subsets/cifar10-test-subset.txt");

/// The names [`named`] knows, with the dataset each indexes.
pub const NAMES: &[(&str, DatasetKind)] = &[
    ("thesis_code_mnist", DatasetKind::Mnist),
    ("thesis_code_cifar10", DatasetKind::Cifar10),
];

/// The index list called `name` and the dataset whose test set it indexes; `None` for an
/// unknown name.
///
/// ```
/// let (idx, kind) = byzadam_data::subsets::named("thesis_code_mnist").unwrap();
/// assert_eq!((idx.len(), idx[0], kind), (2000, 8740, byzadam_data::DatasetKind::Mnist));
/// ```
pub fn named(name: &str) -> Option<(Vec<u32>, DatasetKind)> {
    let (text, kind) = match name {
        "thesis_code_mnist" => (MNIST, DatasetKind::Mnist),
        "thesis_code_cifar10" => (CIFAR10, DatasetKind::Cifar10),
        _ => return None,
    };
    let idx = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .expect("the compiled-in index lists are numbers")
        })
        .collect();
    Some((idx, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lists_are_2000_distinct_test_indices() {
        for (name, _) in NAMES {
            let (mut idx, _) = named(name).unwrap();
            assert_eq!(idx.len(), 2000, "{name}");
            idx.sort_unstable();
            idx.dedup();
            assert_eq!(idx.len(), 2000, "{name}: repeated indices");
            assert!(idx.iter().all(|&i| i < 10_000), "{name}");
        }
        assert!(named("thesis_code_fashion").is_none());
    }
}
