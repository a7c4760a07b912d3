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
