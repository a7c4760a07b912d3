//! The round's two halves driven by hand, as a front end drives them: the same metrics and
//! parameters as `Simulation`, restored halves that continue with the same bits, and wrong
//! shapes refused.

use byzadam_data::{synthetic, Split};
use byzadam_sim::round::{honest_mean_state, ServerCheckpoint, WorkerCheckpoint};
use byzadam_sim::{
    EngineWorker, EvaluationDue, Evaluator, RoundError, RoundMetrics, RunConfig, Server,
    Simulation, Worker,
};
use std::sync::Arc;

fn config(optimizer: &str, attack: &str, extra: &str) -> RunConfig {
    let attack = match attack {
        "none" => "\"none\"".to_string(),
        name => format!("{{ name = \"{name}\" }}"),
    };
    toml::from_str(&format!(
        r#"
        dataset = "synthetic"
        model = {{ name = "mlp", hidden = [16] }}
        batch = 10
        rounds = 9
        eval_every = 4
        eval_samples = 200
        optimizer = {{ name = "{optimizer}" }}
        attack = {attack}
        {extra}
        "#
    ))
    .expect("a valid config")
}

fn data() -> Arc<Split> {
    Arc::new(synthetic::generate(3, 3000, 300))
}

/// One round, worker by worker in order, as a Python loop would run it.
fn round_by_hand(
    workers: &mut [EngineWorker],
    server: &mut Server,
    evaluator: &mut Evaluator,
) -> RoundMetrics {
    let (n, dim, k) = (server.workers(), server.dim(), server.messages());
    let t = server.round() + 1;
    let due = server.evaluation_due();
    let params = server.params().to_vec();
    let mut messages = vec![vec![0.0f32; n * dim]; k];
    let mut losses = vec![0.0f32; n];
    for w in workers.iter_mut() {
        if w.is_byzantine() && !server.needs_byzantine_messages() {
            continue;
        }
        let i = w.index();
        let mut out: Vec<Vec<f32>> = vec![vec![0.0; dim]; k];
        losses[i] = w.step(&params, &mut out).expect("right shapes");
        for (m, o) in messages.iter_mut().zip(&out) {
            m[i * dim..(i + 1) * dim].copy_from_slice(o);
        }
    }
    let mut eval = |server: &Server, workers: &[EngineWorker]| {
        evaluator
            .evaluate(server.params(), &honest_mean_state(workers), t)
            .expect("right shapes")
    };
    let before = (due == Some(EvaluationDue::BeforeUpdate)).then(|| eval(server, workers));
    let refs: Vec<&[f32]> = messages.iter().map(Vec::as_slice).collect();
    let mut m = server.step(&refs, &losses).expect("a round");
    m.eval = before.or_else(|| due.is_some().then(|| eval(server, workers)));
    m
}

fn halves(config: &RunConfig, data: &Arc<Split>) -> (Vec<EngineWorker>, Server, Evaluator) {
    (
        EngineWorker::all(config, data.clone()).expect("workers"),
        Server::new(config.clone()).expect("server"),
        Evaluator::new(config, data).expect("evaluator"),
    )
}

#[test]
fn a_hand_driven_round_gives_the_simulations_metrics_and_parameters() {
    let data = data();
    for (optimizer, attack, extra) in [
        ("dra", "little", ""),
        ("mra", "a_little_is_enough", ""),
        ("sgd", "label_flip", "eval_before_update = true"),
        ("resam", "sign_flip", "byzantine_workers = \"first\""),
    ] {
        let config = config(optimizer, attack, extra);
        let mut sim = Simulation::shared(config.clone(), data.clone()).unwrap();
        let mut expected = Vec::new();
        sim.run(&mut expected).unwrap();
        let (mut workers, mut server, mut evaluator) = halves(&config, &data);
        let got: Vec<RoundMetrics> = (0..config.rounds)
            .map(|_| round_by_hand(&mut workers, &mut server, &mut evaluator))
            .collect();
        assert_eq!(got, expected, "{optimizer} + {attack} {extra}");
        assert_eq!(server.params(), sim.params());
    }
}

#[test]
fn restored_halves_continue_with_the_same_bits() {
    let data = data();
    let config = config(
        "dra",
        "little",
        "aggregator = { name = \"centered_clipping\" }",
    );
    let (mut workers, mut server, mut evaluator) = halves(&config, &data);
    for _ in 0..4 {
        round_by_hand(&mut workers, &mut server, &mut evaluator);
    }
    let server_bytes = server.checkpoint().to_bytes().unwrap();
    let worker_bytes: Vec<Vec<u8>> = workers
        .iter()
        .map(|w| w.checkpoint().to_bytes().unwrap())
        .collect();
    let rest: Vec<RoundMetrics> = (4..config.rounds)
        .map(|_| round_by_hand(&mut workers, &mut server, &mut evaluator))
        .collect();
    let (mut workers2, mut server2, mut evaluator2) = halves(&config, &data);
    server2
        .restore(ServerCheckpoint::from_bytes(&server_bytes).unwrap())
        .unwrap();
    for (w, b) in workers2.iter_mut().zip(&worker_bytes) {
        w.restore(WorkerCheckpoint::from_bytes(b).unwrap()).unwrap();
    }
    assert_eq!(server2.round(), 4);
    let again: Vec<RoundMetrics> = (4..config.rounds)
        .map(|_| round_by_hand(&mut workers2, &mut server2, &mut evaluator2))
        .collect();
    assert!(rest.iter().all(|m| !m.diverged), "a run that trains");
    assert_eq!(again, rest);
    assert_eq!(server2.params(), server.params());
}

#[test]
fn a_checkpoint_of_another_config_or_foreign_bytes_is_refused() {
    let data = data();
    let (_, server, _) = halves(&config("dra", "little", ""), &data);
    let mut other = Server::new(config("dra", "little", "seed = 1")).unwrap();
    let e = other.restore(server.checkpoint()).unwrap_err();
    assert!(e.reason.contains("another config"), "{e}");
    assert!(ServerCheckpoint::from_bytes(b"not a checkpoint").is_err());
    assert!(WorkerCheckpoint::from_bytes(b"BZWORK01\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
    let bytes = server.checkpoint().to_bytes().unwrap();
    for cut in [8, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            ServerCheckpoint::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn wrong_shapes_are_errors_and_change_nothing() {
    let config = config("mra", "little", "");
    let mut server = Server::new(config.clone()).unwrap();
    let (n, dim) = (server.workers(), server.dim());
    let before = server.params().to_vec();
    let good = vec![0.0f32; n * dim];
    let short = vec![0.0f32; n * dim - 1];
    let input = |r: Result<RoundMetrics, RoundError>| {
        assert!(matches!(r, Err(RoundError::Input { .. })), "{r:?}");
    };
    input(server.step(&[&good], &vec![0.0; n])); // MRA sends two messages
    input(server.step(&[&good, &short], &vec![0.0; n]));
    input(server.step(&[&good, &good], &vec![0.0; n - 1]));
    assert_eq!(server.params(), before);
    assert_eq!(server.round(), 0);

    let mut worker = Worker::new(&config, dim);
    let mut grad = vec![1.0f32; dim];
    let mut one = vec![vec![0.0f32; dim]];
    assert!(worker.message(&before, &mut grad, &mut one).is_err());
    let mut two = vec![vec![0.0f32; dim]; 2];
    assert!(worker.message(&before[1..], &mut grad, &mut two).is_err());
    assert_eq!(worker.state().t, 0);
    worker.message(&before, &mut grad, &mut two).unwrap();
    assert_eq!(worker.state().t, 1);

    // An engine worker refuses a wrong `out` before it draws its batch: its next step has
    // the bits of a twin that never saw the wrong call.
    let mut engines = EngineWorker::all(&config, data()).unwrap();
    let mut twins = EngineWorker::all(&config, data()).unwrap();
    let (w, twin) = (&mut engines[0], &mut twins[0]);
    for wrong in [
        vec![vec![0.0f32; dim]],
        vec![vec![0.0f32; dim], vec![0.0; dim - 1]],
    ] {
        let mut wrong = wrong;
        let r = w.step(&before, &mut wrong);
        assert!(matches!(r, Err(RoundError::Input { .. })), "{r:?}");
    }
    let (mut a, mut b) = (vec![vec![0.0f32; dim]; 2], vec![vec![0.0f32; dim]; 2]);
    let (la, lb) = (
        w.step(&before, &mut a).unwrap(),
        twin.step(&before, &mut b).unwrap(),
    );
    assert_eq!(la.to_bits(), lb.to_bits());
    assert_eq!(a, b);
}

#[test]
fn infinite_messages_through_the_average_diverge_and_are_recorded_as_such() {
    // Every row infinite: the average is +inf by definition and the step diverges.
    let config = config("sgd", "none", "aggregator = { name = \"average\" }");
    let mut server = Server::new(config).unwrap();
    let (n, dim) = (server.workers(), server.dim());
    let rows = vec![f32::INFINITY; n * dim];
    let m = server.step(&[&rows], &vec![1.0; n]).unwrap();
    assert!(m.diverged);
    assert_eq!(server.diverged_at(), Some(1));
    assert!((m.train_loss - 1.0).abs() < 1e-12);
}

#[test]
fn a_server_starts_from_given_parameters_and_refuses_non_finite_ones() {
    let cfg = config("sgd", "none", "");
    let start = vec![0.25f32; 1000];
    let mut server = Server::with_params(cfg.clone(), start.clone()).expect("builds");
    assert_eq!(server.params(), &start[..]);
    assert_eq!(server.dim(), 1000);
    // One round of plain SGD on identical messages g: θ − lr·g.
    let n = server.workers();
    let rows = vec![1.0f32; n * 1000];
    server.step(&[&rows], &vec![1.0; n]).expect("steps");
    let lr = server.config().optimizer.lr().at(1);
    assert!(server.params().iter().all(|&p| p == 0.25 - lr));
    for bad in [vec![], vec![f32::NAN], vec![1.0, f32::INFINITY]] {
        let e = Server::with_params(cfg.clone(), bad)
            .err()
            .expect("refused");
        assert_eq!(e.key, "params");
    }
}

/// Random message rows for every worker, seeded.
fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

#[test]
fn every_worker_present_is_step_bit_for_bit() {
    let config = config(
        "dra",
        "little",
        "aggregator = { name = \"trimmed_mean\", f = 5 }",
    );
    let mut a = Server::new(config.clone()).unwrap();
    let mut b = Server::new(config).unwrap();
    let (n, dim) = (a.workers(), a.dim());
    for t in 0..3 {
        let rows = random_rows(n, dim, t);
        let losses: Vec<f32> = (0..n).map(|w| w as f32).collect();
        let ma = a.step(&[&rows], &losses).unwrap();
        let mb = b.step_present(&[&rows], &losses, &vec![true; n]).unwrap();
        assert_eq!(ma, mb);
        assert_eq!(a.params(), b.params());
    }
}

#[test]
fn missing_replies_are_left_out_of_the_aggregate_and_the_loss() {
    // The average with the sign flip: the rule sees the honest rows present and, for each
    // Byzantine worker present, its own row negated; absent rows are never read (NaN here).
    let config = config("sgd", "sign_flip", "aggregator = { name = \"average\" }");
    let mut server = Server::new(config.clone()).unwrap();
    let (n, dim) = (server.workers(), server.dim());
    let byz: Vec<bool> = (0..n).map(|w| server.is_byzantine(w).unwrap()).collect();
    let absent = [
        byz.iter().position(|&b| !b).unwrap(),
        byz.iter().position(|&b| b).unwrap(),
    ];
    let present: Vec<bool> = (0..n).map(|w| !absent.contains(&w)).collect();
    let mut rows = random_rows(n, dim, 7);
    let mut losses: Vec<f32> = (0..n).map(|w| 1.0 + w as f32).collect();
    for &w in &absent {
        rows[w * dim..(w + 1) * dim].fill(f32::NAN);
        losses[w] = f32::NAN;
    }
    let before = server.params().to_vec();
    let m = server.step_present(&[&rows], &losses, &present).unwrap();

    let count = present.iter().filter(|&&p| p).count() as f64;
    let mut mean = vec![0.0f32; dim];
    for (j, m) in mean.iter_mut().enumerate() {
        let s: f64 = (0..n)
            .filter(|&w| present[w])
            .map(|w| f64::from(rows[w * dim + j]) * if byz[w] { -1.0 } else { 1.0 })
            .sum();
        *m = (s / count) as f32;
    }
    let mut expected = before;
    config.optimizer.server_step(1, &mut expected, &[&mean]);
    for (x, y) in server.params().iter().zip(&expected) {
        assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{x} vs {y}");
    }
    let honest: Vec<f64> = (0..n)
        .filter(|&w| present[w] && !byz[w])
        .map(|w| f64::from(losses[w]))
        .collect();
    let mean_loss = honest.iter().sum::<f64>() / honest.len() as f64;
    assert!((m.train_loss - mean_loss).abs() < 1e-12);
    assert!(m.xi_norm.is_finite() && m.honest_diameter.is_finite());
}

#[test]
fn too_few_replies_change_nothing_and_skip_moves_the_round_on() {
    // 15 workers, the trimmed mean trimming f = 5 needs more than 2f = 10 rows.
    let config = config(
        "sgd",
        "none",
        "aggregator = { name = \"trimmed_mean\", f = 5 }",
    );
    let mut server = Server::new(config).unwrap();
    let (n, dim) = (server.workers(), server.dim());
    assert_eq!(n, 15);
    let rows = random_rows(n, dim, 3);
    let losses = vec![1.0f32; n];
    let before = server.params().to_vec();
    // Ten honest present: 10 rows is not more than 2f.
    let present: Vec<bool> = (0..n).map(|w| w < 10).collect();
    match server.step_present(&[&rows], &losses, &present) {
        Err(RoundError::TooFewReplies {
            round: 1,
            replies: 10,
            reason,
        }) => {
            assert!(!reason.is_empty())
        }
        r => panic!("expected too few replies, got {r:?}"),
    }
    assert_eq!(server.params(), before);
    assert_eq!(server.round(), 0);
    // Nobody honest present: refused whatever the rule.
    let only_byz: Vec<bool> = (0..n).map(|w| server.is_byzantine(w).unwrap()).collect();
    assert!(matches!(
        server.step_present(&[&rows], &losses, &only_byz),
        Err(RoundError::TooFewReplies { .. })
    ));
    // Eleven present: more than 2f, aggregated.
    let present: Vec<bool> = (0..n).map(|w| w < 11).collect();
    server.skip().unwrap();
    assert_eq!(server.round(), 1);
    assert_eq!(server.params(), before);
    server.step_present(&[&rows], &losses, &present).unwrap();
    assert_eq!(server.round(), 2);
    assert_ne!(server.params(), before);
    // Wrong flag count: an input error.
    assert!(matches!(
        server.step_present(&[&rows], &losses, &present[1..]),
        Err(RoundError::Input { .. })
    ));
}

#[test]
fn byzantine_rows_forged_elsewhere_are_aggregated_as_sent() {
    // Sign flip on the own message, forged here or by the Byzantine workers themselves
    // (rows as sent, negated by hand): the same rounds, bit for bit.
    let config = config(
        "sgd",
        "sign_flip",
        "aggregator = { name = \"trimmed_mean\", f = 5 }",
    );
    let mut here = Server::new(config.clone()).unwrap();
    let mut sent = Server::new(config).unwrap();
    sent.set_rows_as_sent(true);
    assert!(sent.rows_as_sent() && sent.needs_byzantine_messages());
    let (n, dim) = (here.workers(), here.dim());
    for t in 0..3 {
        let rows = random_rows(n, dim, 10 + t);
        let mut forged = rows.clone();
        for w in (0..n).filter(|&w| here.is_byzantine(w).unwrap()) {
            for x in &mut forged[w * dim..(w + 1) * dim] {
                *x = -*x;
            }
        }
        let losses = vec![1.0f32; n];
        let a = here.step(&[&rows], &losses).unwrap();
        let b = sent.step(&[&forged], &losses).unwrap();
        assert_eq!(a, b);
        assert_eq!(here.params(), sent.params());
    }
    // The rows as sent are not the attack's: unflipped rows give other parameters.
    let rows = random_rows(n, dim, 99);
    here.step(&[&rows], &vec![1.0; n]).unwrap();
    sent.step(&[&rows], &vec![1.0; n]).unwrap();
    assert_ne!(here.params(), sent.params());
}
