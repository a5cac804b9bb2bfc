//! What `bench` writes and prints: the per-stage table, `slices.csv`, `summary.json` (schema
//! `pe-sentinel-bench/1`, documented in docs/bench.md), `latency.svg`, and `bench compare`'s
//! side-by-side view of two summaries. Touches only the files it is asked to write or read.

use super::stats::{percentile, summarize, Summary};
use super::{EngineRun, PeerResult, PeerTiming, SliceRow, SCHEMA};
use crate::budget::SliceTimes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The machine a run came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hardware {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub arch: String,
    pub kernel: String,
    /// /proc/device-tree/model on boards that have one (Jetson), else empty.
    pub board_model: String,
}

impl Hardware {
    pub fn probe() -> Hardware {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name") || l.starts_with("Model") || l.starts_with("Hardware"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        Hardware {
            cpu_model,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            memory_bytes,
            arch: std::env::consts::ARCH.to_string(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            board_model: read("/proc/device-tree/model").trim_end_matches('\0').trim().to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub file: String,
    pub sha256: String,
}

/// One engine's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub engine_requested: String,
    pub engine: String,
    pub engine_reason: String,
    pub slices: usize,
    pub wall_s: f64,
    pub throughput_slices_per_s: f64,
    pub budget_misses: u64,
    pub slow_at_end: bool,
    /// Stage name -> figures (milliseconds); `total` is arrival to verdict.
    pub stages: BTreeMap<String, Summary>,
    /// Mean and max heap allocations per slice inside the engines (None: not measured).
    pub engine_allocations_mean: Option<f64>,
    pub engine_allocations_max: Option<u64>,
    /// The sink's journal transactions, and the most slices one held (grouped when the disk
    /// lags); absent in summaries written before the sink had its own thread.
    #[serde(default)]
    pub commits: u64,
    #[serde(default)]
    pub largest_batch: usize,
    /// The cascade gate of this run (None: off, the detector on every slice); `engine` then
    /// reads "ENGINE+cascadeG". Absent in summaries written before bench ran cascade settings.
    #[serde(default)]
    pub cascade_gate: Option<f32>,
    /// Share of the timed slices the detector ran on (1 with the cascade off).
    #[serde(default)]
    pub detector_share: Option<f64>,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSummary {
    pub schema: String,
    pub created_unix_ms: u64,
    pub pe_sentinel_version: String,
    pub hardware: Hardware,
    pub board: String,
    pub board_profile: String,
    pub precision: String,
    pub threads: usize,
    pub budget_ms: u32,
    pub cascade_gate: Option<f32>,
    pub input: String,
    pub classifier: ModelRef,
    pub detector: ModelRef,
    pub runs: Vec<RunSummary>,
    /// onnxruntime's own inference on the same inputs, when a peer ran.
    pub peer: Option<PeerResult>,
    /// Per run and model: engine median / peer median (same model, same inputs, same threads);
    /// with several rounds, the median over rounds of each round's ratio (its engine runs against
    /// the peer measured right after them).
    pub ratios_to_peer: BTreeMap<String, f64>,
    /// Rounds of (engine runs, peer) this summary pools (1 before `--rounds` existed).
    #[serde(default = "one_round")]
    pub rounds: u32,
    /// Each round's ratios, in round order (empty without a peer).
    #[serde(default)]
    pub ratio_rounds: BTreeMap<String, Vec<f64>>,
}

fn one_round() -> u32 {
    1
}

/// The median of `values`: [`percentile`]'s nearest rank, so for an even count the lower middle
/// value, always one round's own figure; 0 for none.
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// The median over rounds of each ratio, and each ratio's per-round values.
pub fn median_over_rounds(per_round: &[BTreeMap<String, f64>]) -> (BTreeMap<String, f64>, BTreeMap<String, Vec<f64>>) {
    let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in per_round {
        for (k, v) in round {
            all.entry(k.clone()).or_default().push(*v);
        }
    }
    let medians = all.iter().map(|(k, v)| (k.clone(), median(v.iter().copied()))).collect();
    (medians, all)
}

/// The peer's figures over rounds: per role, the median of the rounds' p50 and of their p99, and
/// all their runs. None without any peer.
pub fn peer_over_rounds(peers: &[PeerResult]) -> Option<PeerResult> {
    let first = peers.first()?;
    let models = first
        .models
        .iter()
        .map(|m| {
            let same: Vec<&PeerTiming> =
                peers.iter().filter_map(|p| p.models.iter().find(|x| x.role == m.role)).collect();
            PeerTiming {
                role: m.role.clone(),
                runs: same.iter().map(|t| t.runs).sum(),
                p50_ms: median(same.iter().map(|t| t.p50_ms)),
                p99_ms: median(same.iter().map(|t| t.p99_ms)),
            }
        })
        .collect();
    Some(PeerResult { models, ..first.clone() })
}

/// Summarizes one engine run.
pub fn summarize_run(r: &EngineRun) -> RunSummary {
    let mut stages = BTreeMap::new();
    for (i, name) in SliceTimes::STAGES.iter().enumerate() {
        let v: Vec<u32> = r.rows.iter().map(|row| row.times.values()[i]).collect();
        stages.insert((*name).to_string(), summarize(&v));
    }
    let measured = crate::alloc_count::installed();
    let allocs: Vec<u64> = r.rows.iter().map(|x| x.engine_allocations).collect();
    RunSummary {
        engine_requested: r.requested.clone(),
        engine: r.engine.clone(),
        engine_reason: r.reason.clone(),
        slices: r.rows.len(),
        wall_s: r.wall_s,
        throughput_slices_per_s: if r.wall_s > 0.0 { r.rows.len() as f64 / r.wall_s } else { 0.0 },
        budget_misses: r.budget_misses,
        slow_at_end: r.slow_at_end,
        stages,
        engine_allocations_mean: measured.then(|| allocs.iter().sum::<u64>() as f64 / allocs.len().max(1) as f64),
        engine_allocations_max: measured.then(|| allocs.iter().copied().max().unwrap_or(0)),
        commits: r.commits,
        largest_batch: r.largest_batch,
        cascade_gate: r.cascade_gate,
        detector_share: (!r.rows.is_empty())
            .then(|| r.rows.iter().filter(|x| x.detector_ran).count() as f64 / r.rows.len() as f64),
    }
}

/// Engine median / peer median per run and model ("tract/classifier" -> 4.8), the end-to-end p50
/// over the sum of the peer's two tight-loop medians ("tract/end_to_end_vs_peer_models"), and over
/// the peer's median of both models run back to back per slice ("tract/end_to_end_vs_peer_pair",
/// when the peer measured that role). And the run's throughput over the peer's, the peer running
/// both models on every slice ("onnxruntime+cascade0.05/throughput_vs_peer_pair": slices/s over
/// 1000 / the pair's p50 ms; above 1 is faster than the peer, unlike the latency ratios).
pub fn peer_ratios(runs: &[RunSummary], peer: &PeerResult) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let peer_ms = |role: &str| peer.models.iter().find(|m| m.role == role).map(|m| m.p50_ms);
    for r in runs {
        for role in ["classifier", "detector"] {
            // Behind a cascade the detector's median is over slices it mostly skipped: no ratio.
            if role == "detector" && r.cascade_gate.is_some() {
                continue;
            }
            if let (Some(s), Some(p)) = (r.stages.get(role), peer_ms(role)) {
                if p > 0.0 {
                    out.insert(format!("{}/{role}", r.engine), s.p50_ms / p);
                }
            }
        }
        if let (Some(t), Some(c), Some(d)) = (r.stages.get("total"), peer_ms("classifier"), peer_ms("detector")) {
            if c + d > 0.0 {
                out.insert(format!("{}/end_to_end_vs_peer_models", r.engine), t.p50_ms / (c + d));
            }
        }
        if let (Some(t), Some(pair)) = (r.stages.get("total"), peer_ms("classifier+detector")) {
            if pair > 0.0 {
                out.insert(format!("{}/end_to_end_vs_peer_pair", r.engine), t.p50_ms / pair);
                out.insert(format!("{}/throughput_vs_peer_pair", r.engine), r.throughput_slices_per_s * pair / 1000.0);
            }
        }
    }
    out
}

/// The per-stage table printed after a run.
pub fn table(s: &BenchSummary) -> String {
    let mut t = String::new();
    let hw = &s.hardware;
    let _ = writeln!(
        t,
        "machine: {} ({} cores, {:.1} GiB, {} {}){}",
        if hw.cpu_model.is_empty() { "unknown CPU" } else { &hw.cpu_model },
        hw.cores,
        hw.memory_bytes as f64 / f64::from(1u32 << 30),
        hw.arch,
        hw.kernel,
        if hw.board_model.is_empty() { String::new() } else { format!(", board {}", hw.board_model) }
    );
    let _ = writeln!(
        t,
        "profile {} ({}), precision {}, {} thread(s), budget {} ms, input {}",
        s.board, s.board_profile, s.precision, s.threads, s.budget_ms, s.input
    );
    for r in &s.runs {
        let _ = writeln!(
            t,
            "\nengine {} ({}): {} slices in {:.1} s, {:.1} slices/s, {} over budget{}; journal: {} commits, up to {} jobs each",
            r.engine,
            r.engine_reason,
            r.slices,
            r.wall_s,
            r.throughput_slices_per_s,
            r.budget_misses,
            if r.slow_at_end { " (SLOW at the end)" } else { "" },
            r.commits,
            r.largest_batch
        );
        if let (Some(g), Some(share)) = (r.cascade_gate, r.detector_share) {
            let _ = writeln!(
                t,
                "  cascade: detector only when classifier P >= {g}: it ran on {:.1}% of the slices",
                share * 100.0
            );
        }
        let _ = writeln!(
            t,
            "  {:<11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "stage", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"
        );
        for name in SliceTimes::STAGES {
            if let Some(x) = r.stages.get(name) {
                let _ = writeln!(
                    t,
                    "  {:<11} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    name, x.p50_ms, x.p90_ms, x.p99_ms, x.max_ms, x.mean_ms
                );
            }
        }
        match (r.engine_allocations_mean, r.engine_allocations_max) {
            (Some(m), Some(x)) => {
                let _ = writeln!(
                    t,
                    "  heap allocations per slice inside the engines: mean {m:.0}, max {x} (project code: 0)"
                );
            }
            _ => {
                let _ = writeln!(
                    t,
                    "  heap allocations inside the engines: not measured (counting allocator not installed)"
                );
            }
        }
    }
    if let Some(p) = &s.peer {
        let _ = writeln!(
            t,
            "\npeer: {} {} (Python, {} thread(s)) on the same preprocessed inputs{}",
            p.runtime,
            p.version,
            p.threads,
            if s.rounds > 1 {
                format!("; per role the median of {} rounds' p50 and p99", s.rounds)
            } else {
                String::new()
            }
        );
        for m in &p.models {
            let _ =
                writeln!(t, "  {:<19} p50 {:>8.2} ms  p99 {:>8.2} ms  ({} runs)", m.role, m.p50_ms, m.p99_ms, m.runs);
        }
        let rounds = if s.rounds > 1 { format!(" (median of {} rounds)", s.rounds) } else { String::new() };
        for (k, v) in &s.ratios_to_peer {
            let each = match s.ratio_rounds.get(k) {
                Some(r) if r.len() > 1 => {
                    format!("; rounds: {}", r.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(" "))
                }
                _ => String::new(),
            };
            let _ = writeln!(t, "  ratio {k}: {v:.3}x{rounds}{each}");
        }
    }
    t
}

/// `slices.csv`: one row per timed slice and engine, milliseconds.
pub fn write_csv(path: &Path, rows: &[&SliceRow]) -> std::io::Result<()> {
    let mut s = String::from("engine,index,file,frame");
    for n in SliceTimes::STAGES {
        let _ = write!(s, ",{n}_ms");
    }
    s.push_str(",missed,p,boxes,suspicious,engine_allocations,detector_ran\n");
    for r in rows {
        let _ = write!(s, "{},{},{},{}", r.engine, r.index, csv_field(&r.file), r.frame);
        for v in r.times.values() {
            let _ = write!(s, ",{:.3}", f64::from(v) / 1000.0);
        }
        let _ = writeln!(
            s,
            ",{},{:.6},{},{},{},{}",
            r.missed, r.p, r.boxes, r.suspicious, r.engine_allocations, r.detector_ran
        );
    }
    std::fs::write(path, s)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `bench compare A.json B.json`: both summaries side by side, B/A ratios per stage (p50, p99).
pub fn compare(a: &BenchSummary, b: &BenchSummary, a_name: &str, b_name: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "A: {a_name}: {} on {} ({} cores), {}",
        a.board, a.hardware.cpu_model, a.hardware.cores, a.precision
    );
    let _ = writeln!(
        t,
        "B: {b_name}: {} on {} ({} cores), {}",
        b.board, b.hardware.cpu_model, b.hardware.cores, b.precision
    );
    for ra in &a.runs {
        let rb = b.runs.iter().find(|r| r.engine == ra.engine).or_else(|| b.runs.first());
        let Some(rb) = rb else { continue };
        let _ = writeln!(t, "\nA engine {} vs B engine {}", ra.engine, rb.engine);
        let _ = writeln!(
            t,
            "  {:<11} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7}",
            "stage", "A p50 ms", "B p50 ms", "B/A", "A p99 ms", "B p99 ms", "B/A"
        );
        for name in SliceTimes::STAGES {
            let (Some(x), Some(y)) = (ra.stages.get(name), rb.stages.get(name)) else { continue };
            let ratio = |p: f64, q: f64| if p > 0.0 { format!("{:.2}", q / p) } else { "-".into() };
            let _ = writeln!(
                t,
                "  {:<11} {:>10.2} {:>10.2} {:>7} {:>10.2} {:>10.2} {:>7}",
                name,
                x.p50_ms,
                y.p50_ms,
                ratio(x.p50_ms, y.p50_ms),
                x.p99_ms,
                y.p99_ms,
                ratio(x.p99_ms, y.p99_ms)
            );
        }
        let _ = writeln!(
            t,
            "  throughput: A {:.1} slices/s, B {:.1} slices/s; over budget: A {} of {}, B {} of {}",
            ra.throughput_slices_per_s,
            rb.throughput_slices_per_s,
            ra.budget_misses,
            ra.slices,
            rb.budget_misses,
            rb.slices
        );
    }
    t
}

/// Reads a `summary.json`, naming the file and what to do when it is not one.
pub fn load_summary(path: &Path) -> anyhow::Result<BenchSummary> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}; give the summary.json a bench run wrote", path.display()))?;
    let s: BenchSummary = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a bench summary ({SCHEMA}): {e}; give the summary.json a bench run wrote",
            path.display()
        )
    })?;
    if s.schema != SCHEMA {
        anyhow::bail!(
            "{}: schema {} is not {SCHEMA}; compare summaries from the same pe-sentinel version",
            path.display(),
            s.schema
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(engine: &str, totals: &[u32]) -> EngineRun {
        EngineRun {
            requested: engine.into(),
            engine: engine.into(),
            cascade_gate: None,
            reason: "test".into(),
            rows: totals
                .iter()
                .enumerate()
                .map(|(i, &t)| SliceRow {
                    engine: engine.into(),
                    index: i,
                    file: format!("f,{i}.dcm"),
                    frame: 0,
                    times: SliceTimes {
                        stages: crate::budget::StageLatencyUs {
                            classifier: t / 4,
                            detector: t / 2,
                            ..Default::default()
                        },
                        total: t,
                    },
                    missed: t > 50_000,
                    p: 0.5,
                    boxes: 1,
                    suspicious: true,
                    engine_allocations: 3,
                    detector_ran: i % 2 == 0,
                })
                .collect(),
            wall_s: 1.0,
            commits: 0,
            largest_batch: 0,
            budget_misses: totals.iter().filter(|&&t| t > 50_000).count() as u64,
            slow_at_end: false,
        }
    }

    #[test]
    fn peer_ratios_divide_engine_medians_by_the_peers() {
        let r = summarize_run(&run("tract", &[40_000, 40_000, 40_000]));
        assert_eq!(r.stages["classifier"].p50_ms, 10.0);
        let peer = PeerResult {
            runtime: "onnxruntime".into(),
            version: "1".into(),
            threads: 2,
            models: vec![
                super::super::PeerTiming { role: "classifier".into(), runs: 10, p50_ms: 2.0, p99_ms: 3.0 },
                super::super::PeerTiming { role: "detector".into(), runs: 10, p50_ms: 8.0, p99_ms: 9.0 },
                super::super::PeerTiming { role: "classifier+detector".into(), runs: 10, p50_ms: 12.5, p99_ms: 13.0 },
            ],
        };
        let q = peer_ratios(std::slice::from_ref(&r), &peer);
        assert_eq!(q["tract/classifier"], 5.0);
        assert_eq!(q["tract/detector"], 2.5);
        assert_eq!(q["tract/end_to_end_vs_peer_models"], 4.0);
        assert_eq!(q["tract/end_to_end_vs_peer_pair"], 3.2);
        // 3 slices in 1 s against a peer pair of 12.5 ms (80 slices/s).
        assert_eq!(q["tract/throughput_vs_peer_pair"], 3.0 / 80.0);
        assert_eq!(r.detector_share, Some(2.0 / 3.0));
        let gated = RunSummary { engine: "tract+cascade0.1".into(), cascade_gate: Some(0.1), ..r.clone() };
        let q = peer_ratios(std::slice::from_ref(&gated), &peer);
        assert!(q.contains_key("tract+cascade0.1/classifier") && !q.contains_key("tract+cascade0.1/detector"), "{q:?}");
        // An older peer without the pair role: no pair ratio, the others unchanged.
        let old = PeerResult { models: peer.models[..2].to_vec(), ..peer };
        let q = peer_ratios(&[r], &old);
        assert!(!q.contains_key("tract/end_to_end_vs_peer_pair") && q["tract/end_to_end_vs_peer_models"] == 4.0);
        assert!(!q.contains_key("tract/throughput_vs_peer_pair"));
    }

    /// Rounds: slices pooled per engine (indexed anew, wall time and misses summed), each ratio
    /// the median of the rounds' ratios, the peer's figures the median per role.
    #[test]
    fn rounds_pool_slices_and_take_median_ratios() {
        let pooled = crate::bench::pool_rounds(vec![
            vec![run("tract", &[10_000, 60_000]), run("onnxruntime", &[4_000])],
            vec![run("tract", &[20_000]), run("onnxruntime", &[5_000, 6_000])],
        ]);
        assert_eq!(pooled.len(), 2);
        let t = &pooled[0];
        assert_eq!(
            t.rows.iter().map(|r| (r.index, r.times.total)).collect::<Vec<_>>(),
            [(0, 10_000), (1, 60_000), (2, 20_000)]
        );
        assert_eq!((t.wall_s, t.budget_misses), (2.0, 1));
        assert_eq!(pooled[1].rows.len(), 3);
        assert!(pooled[1].rows.iter().all(|r| r.engine == "onnxruntime"));

        let round = |x: f64| BTreeMap::from([("onnxruntime/end_to_end_vs_peer_pair".to_string(), x)]);
        let (m, each) = median_over_rounds(&[round(1.2), round(1.05), round(1.07)]);
        assert_eq!(m["onnxruntime/end_to_end_vs_peer_pair"], 1.07);
        assert_eq!(each["onnxruntime/end_to_end_vs_peer_pair"], [1.2, 1.05, 1.07]);
        // An even count gives the lower middle round's own figure, not an average.
        let (m, _) = median_over_rounds(&[round(1.2), round(1.05), round(1.07), round(1.3)]);
        assert_eq!(m["onnxruntime/end_to_end_vs_peer_pair"], 1.07);
        assert!(median_over_rounds(&[]).0.is_empty());

        let peer = |c: f64, c99: f64| PeerResult {
            runtime: "onnxruntime".into(),
            version: "1".into(),
            threads: 2,
            models: vec![PeerTiming { role: "classifier".into(), runs: 10, p50_ms: c, p99_ms: c99 }],
        };
        let p = peer_over_rounds(&[peer(2.0, 9.0), peer(1.5, 2.0), peer(1.6, 3.0)]).expect("peer");
        assert_eq!((p.models[0].p50_ms, p.models[0].p99_ms, p.models[0].runs), (1.6, 3.0, 30));
        assert!(peer_over_rounds(&[]).is_none());
    }

    #[test]
    fn csv_quotes_awkward_names_and_svg_draws_every_engine() {
        let a = run("tract", &[10_000, 60_000]);
        let b = run("onnxruntime", &[5_000, 6_000]);
        let dir = tempfile::tempdir().expect("tempdir");
        let rows: Vec<&SliceRow> = a.rows.iter().chain(&b.rows).collect();
        write_csv(&dir.path().join("s.csv"), &rows).expect("csv");
        let text = std::fs::read_to_string(dir.path().join("s.csv")).expect("read");
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("\"f,1.dcm\""), "{text}");
        assert!(text.lines().nth(2).is_some_and(|l| l.contains(",60.000,true,")), "{text}");
        let svg = super::super::svg::svg(&[a, b], 50);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("budget 50 ms") && svg.ends_with("</svg>\n"));
    }
}
