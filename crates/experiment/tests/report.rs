//! Report tables from hand-made stored runs: cells over seeds (mean, sample standard
//! deviation), the best aggregator chosen on the mean, best/worst marks, labels and sections.

use byzadam_experiment::report::{sections, Format, Stats};
use byzadam_experiment::store::StoredRun;
use byzadam_robust::aggregators::{Average, Median, TrimmedMean};
use byzadam_robust::attacks::SignFlip;
use byzadam_robust::{AggregatorConfig, AttackConfig};
use byzadam_sim::{RunConfig, Summary};

fn run(id: &str, opt: &str, agg: AggregatorConfig, attack: bool, seed: u64, acc: f64) -> StoredRun {
    let extra = if opt == "dra" {
        r#", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8"#
    } else {
        ""
    };
    let optimizer = serde_json::from_str(&format!(
        r#"{{"name": "{opt}", "lr": {{"name": "constant", "value": 0.1}}{extra}}}"#
    ))
    .unwrap();
    StoredRun {
        id: id.into(),
        config: RunConfig {
            optimizer,
            aggregator: agg,
            attack: attack.then(|| AttackConfig::SignFlip(SignFlip::default())),
            seed,
            ..RunConfig::default()
        },
        summary: Summary {
            rounds: 300,
            final_accuracy: acc,
            best_accuracy: acc,
            final_loss: 0.0,
            diverged_at: None,
            seconds: 1.0,
            class_recall: Vec::new(),
        },
        backend: byzadam_experiment::store::BUILTIN.into(),
    }
}

fn avg() -> AggregatorConfig {
    AggregatorConfig::Average(Average {})
}
fn cwtm() -> AggregatorConfig {
    AggregatorConfig::TrimmedMean(TrimmedMean::new(5))
}
fn cwm() -> AggregatorConfig {
    AggregatorConfig::Median(Median {})
}

#[test]
fn stats_are_the_mean_and_the_sample_standard_deviation() {
    let s = Stats::of(&[0.9, 0.8, 0.7]);
    assert!((s.mean - 0.8).abs() < 1e-12);
    // Sample sd of {0.9, 0.8, 0.7}: sqrt((0.01 + 0 + 0.01) / 2) = 0.1.
    assert!((s.sd - 0.1).abs() < 1e-12);
    assert_eq!((Stats::of(&[0.5]).sd, Stats::of(&[0.5]).n), (0.0, 1));
}

#[test]
fn the_best_aggregator_is_chosen_on_the_mean_over_seeds() {
    // SGD under sign flip: AVG seeds {0.90, 0.50} (mean 0.70, best single run 0.90);
    // CWTM seeds {0.80, 0.78} (mean 0.79): CWTM is best on the mean.
    let runs = vec![
        run("a0", "sgd", avg(), true, 0, 0.90),
        run("a1", "sgd", avg(), true, 1, 0.50),
        run("t0", "sgd", cwtm(), true, 0, 0.80),
        run("t1", "sgd", cwtm(), true, 1, 0.78),
        run("m0", "dra", cwm(), true, 0, 0.60),
        run("m1", "dra", cwm(), true, 1, 0.62),
        run("n0", "sgd", avg(), false, 0, 0.97),
        run("n1", "sgd", avg(), false, 1, 0.95),
        run("d0", "dra", cwm(), false, 0, 0.93),
        run("d1", "dra", cwm(), false, 1, 0.91),
    ];
    let curve = |_: &str| vec![(10u64, 0.5), (20, 0.6)];
    let secs = sections(&runs, &curve);
    assert_eq!(
        secs.len(),
        1,
        "only optimizer, aggregator, attack and seeds vary"
    );
    let s = &secs[0];
    assert_eq!(s.optimizers, ["SGD", "DRA"]);
    assert_eq!(s.attacks, ["No attack", "Sign Flip"], "no attack first");
    assert_eq!(s.aggregators, ["AVG", "CWM", "CWTM"]);
    let (agg, cell) = s.best(0, 1).unwrap();
    assert_eq!(s.aggregators[agg], "CWTM");
    assert!((cell.final_accuracy.mean - 0.79).abs() < 1e-12);
    assert_eq!(cell.final_accuracy.n, 2);
    assert_eq!(cell.runs, ["t0", "t1"]);
    assert_eq!(
        cell.curve,
        vec![(10, Stats::of(&[0.5, 0.5])), (20, Stats::of(&[0.6, 0.6]))]
    );
    let md = s.best_table(Format::Markdown);
    // Sign flip column: SGD 0.79 (best, bold), DRA 0.61 (worst, italics).
    assert!(md.contains("**0.7900 ± 0.0141 CWTM**"), "{md}");
    assert!(md.contains("_0.6100 ± 0.0141 CWM_"), "{md}");
    assert!(md.contains("| | No attack | Sign Flip |"), "{md}");
    let csv = s.best_table(Format::Csv);
    assert!(csv.contains("SGD,Sign Flip,CWTM,0.79"), "{csv}");
    assert!(csv
        .lines()
        .any(|l| l.starts_with("DRA,Sign Flip,CWM,") && l.ends_with(",false,true")));
    let tex = s.best_table(Format::Latex);
    assert!(tex.contains("\\textbf{0.7900 $\\pm$ 0.0141 CWTM}"), "{tex}");
    assert!(
        tex.contains("\\underline{0.6100 $\\pm$ 0.0141 CWM}"),
        "{tex}"
    );
    // The full SGD table: rows aggregators, the per-column best in bold, a dash where no run.
    let full = s.full_table(0, Format::Markdown);
    // (A column with a single value marks nothing.)
    assert!(
        full.contains("| AVG | 0.9600 ± 0.0141 | 0.7000 ± 0.2828 |"),
        "{full}"
    );
    assert!(
        full.contains("| CWTM | – | **0.7900 ± 0.0141** |"),
        "{full}"
    );
    assert!(full.contains("| CWM | – | – |"), "{full}");
}

#[test]
fn settings_that_differ_make_sections_and_same_named_settings_are_told_apart() {
    let mut a = run("a", "sgd", avg(), true, 0, 0.5);
    let mut b = run("b", "sgd", avg(), true, 0, 0.6);
    b.config.workers = 17;
    let secs = sections(&[a.clone(), b], &|_| Vec::new());
    assert_eq!(secs.len(), 2);
    assert_eq!(secs[0].title, "workers = 15");
    assert_eq!(secs[1].title, "workers = 17");
    // Two SGD learning rates in one section are two rows, not two seeds.
    let mut c = a.clone();
    c.id = "c".into();
    c.config.optimizer =
        serde_json::from_str(r#"{"name": "sgd", "lr": {"name": "constant", "value": 0.5}}"#)
            .unwrap();
    a.id = "a".into();
    let secs = sections(&[a, c], &|_| Vec::new());
    assert_eq!(secs.len(), 1);
    assert_eq!(secs[0].optimizers.len(), 2);
    assert!(secs[0].optimizers.iter().all(|o| o.starts_with("SGD ")));
}

#[test]
fn another_backends_runs_are_a_section_of_their_own() {
    // Same config, one run of the built-in engine and two of a torch model (two seeds): two
    // sections, the torch one titled by its backend; the torch seeds average together only.
    let builtin = run("a", "sgd", avg(), true, 0, 0.5);
    let mut t0 = run("t0", "sgd", avg(), true, 0, 0.7);
    let mut t1 = run("t1", "sgd", avg(), true, 1, 0.9);
    t0.backend = "torch:Net".into();
    t1.backend = "torch:Net".into();
    let secs = sections(&[builtin, t0, t1], &|_| Vec::new());
    assert_eq!(secs.len(), 2);
    assert_eq!(secs[0].title, "backend = \"builtin\"");
    assert_eq!(secs[1].title, "backend = \"torch:Net\"");
    let torch = &secs[1].cells[&(0, 0, 0)];
    assert_eq!(torch.runs, ["t0", "t1"]);
    assert!((torch.final_accuracy.mean - 0.8).abs() < 1e-12);
    assert_eq!(secs[0].cells[&(0, 0, 0)].final_accuracy.n, 1);
}

#[test]
fn a_reference_table_is_read_and_compared_cell_by_cell() {
    let reference = byzadam_experiment::report::parse_reference(
        "optimizer,attack,accuracy,aggregator\nSGD,Sign Flip,0.75,AVG\nDRA,Little,0.5,CWTM\n",
    )
    .unwrap();
    assert_eq!(reference.len(), 2);
    assert_eq!(reference[0].accuracy, 0.75);
    let runs = vec![
        run("a", "sgd", avg(), true, 0, 0.70),
        run("b", "sgd", cwtm(), true, 0, 0.80),
    ];
    let s = &sections(&runs, &|_| Vec::new())[0];
    let md = s.comparison(&reference, Format::Markdown);
    // Ours: CWTM 0.80; reference AVG 0.75: +0.05. DRA is not in the section: no row.
    assert!(
        md.contains("| SGD | Sign Flip | 0.8000 | CWTM | 0.7500 | AVG | +0.0500 |"),
        "{md}"
    );
    assert_eq!(md.lines().count(), 3, "{md}");
    let csv = s.comparison(&reference, Format::Csv);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("SGD,Sign Flip,0.8,0,CWTM,0.75,AVG,0.05"),
        "{csv}"
    );
    // Errors name the line.
    let e = byzadam_experiment::report::parse_reference(
        "optimizer,attack,accuracy,aggregator\nSGD,Little,high,AVG\n",
    )
    .unwrap_err();
    assert!(e.contains("line 2"), "{e}");
    assert!(byzadam_experiment::report::parse_reference("a,b\n1,2\n")
        .unwrap_err()
        .contains("line 1"));
}
