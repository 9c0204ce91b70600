//! The main job's command line: bad input exits with code 2 and a message; a run writes its
//! report, figure and summary, identically for the same seed.

use std::path::Path;
use std::process::Command;

fn reproduce(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reproduce"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn bad_input_exits_with_code_2_and_a_message() {
    for (args, needle) in [
        (vec!["--only", "thm-9.9"], "unknown claim id"),
        (vec!["--bogus"], "--bogus"),
        (vec!["--seed", "-3"], "--seed"),
        (vec!["--seed"], "--seed"),
        (vec!["--only"], "--only"),
        (vec!["--seeds", "0"], "--seeds"),
        (vec!["--out", ""], "--out"),
    ] {
        let out = reproduce(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: stderr was {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

fn run_into(dir: &Path) {
    let out = reproduce(&[
        "--quick",
        "--only",
        "thm-3.1-cos",
        "--only",
        "eq-8",
        "--seed",
        "5",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reports_and_figures_are_reproducible_from_the_seed() {
    let base = std::env::temp_dir().join(format!("nexus-lab-cli-{}", std::process::id()));
    let (a, b) = (base.join("a"), base.join("b"));
    run_into(&a);
    run_into(&b);
    for file in [
        "reports/thm-3.1-cos.json",
        "reports/eq-8.json",
        "thm-3.1-cos.png",
        "eq-8.png",
        "REPORT.md",
    ] {
        let (x, y) = (
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
        );
        assert!(x == y, "{file} differs between two runs with the same seed");
    }
    let png = std::fs::read(a.join("eq-8.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("reports/eq-8.json")).unwrap()).unwrap();
    assert_eq!(json["seed"], 5);
    assert_eq!(json["crate_version"], env!("CARGO_PKG_VERSION"));
    assert!(json["instances"].as_array().unwrap().len() > 10);
    let summary = std::fs::read_to_string(a.join("REPORT.md")).unwrap();
    assert!(summary.contains("| [eq-8](#eq-8)"));
    // No temporary files are left behind by the atomic writes.
    let leftovers: Vec<_> = walk(&a)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(&base).ok();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn nexus_run_rejects_bad_input_with_code_2() {
    for (args, needle) in [
        (vec!["--K", "0"], "--K"),
        (vec!["--gamma", "0"], "--gamma"),
        (vec!["--gamma", "-0.5"], "must be > 0"),
        (vec!["--spread", "-1"], "--spread"),
        (vec!["--gamma", "NaN"], "must be finite"),
        (vec!["--lr", "inf"], "must be finite"),
        (vec!["--family", "cubic"], "unknown family"),
        (vec!["--outer", "lion"], "--outer"),
        (vec!["--tasks", "two"], "--tasks"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_nexus_run"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn nexus_run_prints_a_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_nexus_run"))
        .args(["--steps", "20", "--every", "10"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .count(),
        3,
        "{text}"
    );
}

/// End to end: `reproduce --quick` reaches the verdicts committed in `figures/reports/` (the full
/// run's), claim by claim, controls included. A change that moves a verdict fails here until the
/// figures are regenerated and the change is seen.
#[test]
fn quick_run_gives_the_committed_verdicts() {
    let dir = std::env::temp_dir().join(format!("nexus-lab-e2e-{}", std::process::id()));
    let out = reproduce(&["--quick", "--seeds", "1", "--out", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed =
        nexus_lab::report::load_all(Path::new("figures"), &nexus_lab::claims::ids()).unwrap();
    let quick = nexus_lab::report::load_all(&dir, &nexus_lab::claims::ids()).unwrap();
    for claim in nexus_lab::claims::registry() {
        let id = claim.id();
        let find = |all: &[nexus_lab::report::ClaimReport]| {
            all.iter()
                .find(|r| r.id == id)
                .map(|r| r.verdict)
                .unwrap_or_else(|| panic!("no report for {id}"))
        };
        assert_eq!(find(&quick), find(&committed), "{id}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A committed Llama report is what its committed runs give: `pretrain <args> --stored-only`,
/// on a copy of the runs in `figures/.pretrain-runs/<study>/`, writes the committed JSON report
/// number for number (verdicts, intervals, findings) and trains nothing. A change to the
/// study's analysis or settings fails here until the report is re-published.
fn committed_report_is_what_its_committed_runs_give(study: &str, args: &[&str]) {
    let out = std::env::temp_dir().join(format!("nexus-lab-{study}-{}", std::process::id()));
    std::fs::remove_dir_all(&out).ok();
    let runs = Path::new("figures/.pretrain-runs").join(study);
    let masters: Vec<_> = std::fs::read_dir(&runs)
        .unwrap_or_else(|e| panic!("{}: {e}", runs.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(masters.len(), 2, "one folder per master seed");
    for master in masters {
        let copy = out
            .join(".pretrain-runs")
            .join(study)
            .join(master.file_name().unwrap());
        std::fs::create_dir_all(&copy).unwrap();
        for run in std::fs::read_dir(&master).unwrap() {
            let run = run.unwrap().path();
            if run.extension().is_some_and(|e| e == "json") {
                std::fs::copy(&run, copy.join(run.file_name().unwrap())).unwrap();
            }
        }
    }
    let o = Command::new(env!("CARGO_BIN_EXE_pretrain"))
        .args(args)
        .args(["--stored-only", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let report = |dir: &Path| -> serde_json::Value {
        let path = dir.join("reports").join(format!("{study}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    assert_eq!(report(&out), report(Path::new("figures")));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn the_committed_size_report_is_what_its_committed_runs_give() {
    committed_report_is_what_its_committed_runs_give("llama-sizes", &["--sweep", "sizes"]);
}

#[test]
fn the_committed_schedule_report_is_what_its_committed_runs_give() {
    committed_report_is_what_its_committed_runs_give("llama-schedules", &["--sweep", "schedules"]);
}

#[test]
fn the_committed_dose_report_is_what_its_committed_runs_give() {
    committed_report_is_what_its_committed_runs_give("llama-dose", &["--sweep", "dose"]);
}

#[test]
fn the_committed_variant_report_is_what_its_committed_runs_give() {
    committed_report_is_what_its_committed_runs_give("llama-pretrain", &[]);
}
