//! The shipped grids of `configs/thesis/` expand to the thesis's experiments (section 4:
//! 4 optimizers × 5 aggregators × 7 attack settings, with its workers, Byzantine workers,
//! batches, rounds and learning rates).

use byzadam_experiment::store::Labels;
use byzadam_experiment::Grid;
use byzadam_optim::{Optimizer, Schedule};
use std::collections::BTreeSet;
use std::path::Path;

fn expand(name: &str) -> Vec<byzadam_experiment::Run> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/thesis")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let grid = Grid::parse(&text, &path.display().to_string()).unwrap();
    assert_eq!(format!("{}.toml", grid.name()), name);
    grid.expand().unwrap()
}

fn lr(o: &Optimizer) -> Schedule {
    match o {
        Optimizer::Sgd { lr } | Optimizer::Resam { lr, .. } => lr.clone(),
        Optimizer::Dra { lr, .. } | Optimizer::Mra { lr, .. } => lr.clone(),
    }
}

/// (workers, byzantine, batch, rounds, pre-aggregators, SGD lr, RESAM lr) per grid.
#[test]
fn the_four_thesis_grids_have_the_thesis_settings() {
    let inverse = Schedule::InverseStep {
        initial: 0.75,
        every: 50,
        lag: 0,
    };
    let c = |v: f64| Schedule::Constant { value: v };
    for (file, workers, byz, batch, rounds, pre, sgd, resam) in [
        (
            "mnist-homogeneous.toml",
            15,
            5,
            25,
            300,
            "",
            c(0.75),
            c(0.75),
        ),
        (
            "mnist-heterogeneous.toml",
            17,
            4,
            25,
            300,
            "nearest_neighbor_mixing",
            inverse.clone(),
            inverse.clone(),
        ),
        (
            "cifar10-homogeneous.toml",
            15,
            5,
            50,
            1500,
            "",
            c(0.25),
            c(0.25),
        ),
        (
            "cifar10-heterogeneous.toml",
            15,
            4,
            50,
            1500,
            "nearest_neighbor_mixing",
            inverse.clone(),
            c(0.25),
        ),
    ] {
        let runs = expand(file);
        assert_eq!(runs.len(), 4 * 5 * 7, "{file}");
        let mut cells = BTreeSet::new();
        for r in &runs {
            let cfg = &r.config;
            assert_eq!(
                (cfg.workers, cfg.byzantine, cfg.batch, cfg.rounds),
                (workers, byz, batch, rounds),
                "{file}"
            );
            assert_eq!(cfg.gradient.l2, 1e-4, "{file}");
            assert_eq!(cfg.gradient.clip, Some(2.0), "{file}");
            let l = Labels::of(cfg);
            assert_eq!(l.preaggregators, pre, "{file}");
            let expected = match l.optimizer.as_str() {
                "sgd" => sgd.clone(),
                "resam" => resam.clone(),
                _ => c(0.001),
            };
            assert_eq!(lr(&cfg.optimizer), expected, "{file} {}", l.optimizer);
            if let Optimizer::Dra { beta1, beta2, .. } | Optimizer::Mra { beta1, beta2, .. } =
                &cfg.optimizer
            {
                assert_eq!((*beta1, *beta2), (0.99, 0.999));
            }
            if let Optimizer::Resam { beta, .. } = &cfg.optimizer {
                assert_eq!(*beta, 0.99);
            }
            cells.insert((l.optimizer, l.aggregator, l.attack));
        }
        assert_eq!(cells.len(), 140, "{file}: every cell once");
        let attacks: BTreeSet<String> = cells.iter().map(|c| c.2.clone()).collect();
        let expected: BTreeSet<String> = [
            "none",
            "little",
            "empire",
            "sign_flip",
            "label_flip",
            "positive_infinity",
            "negative_infinity",
        ]
        .map(String::from)
        .into();
        assert_eq!(attacks, expected, "{file}");
        let aggregators: BTreeSet<String> = cells.iter().map(|c| c.1.clone()).collect();
        let expected: BTreeSet<String> = [
            "average",
            "trimmed_mean",
            "mean_around_median",
            "median",
            "minimum_diameter_averaging",
        ]
        .map(String::from)
        .into();
        assert_eq!(aggregators, expected, "{file}");
    }
}
