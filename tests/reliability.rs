//! Runs and command lines that never lose work: a training process killed at every point of
//! the checkpoint protocol resumes bit-identically and keeps checkpointing; one process per run
//! folder; `--resume` changes only what is safe and names what it refuses; a damaged
//! checkpoint is an error naming the file and the entry; bad flags exit with code 2 and one
//! line, never a panic.

use nexus_lab::llama::checkpoint::FAILPOINTS;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TRAIN: &str = env!("CARGO_BIN_EXE_train");

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nexus-lab-rel-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

/// A six-step micro run checkpointing every two steps.
fn train(out: &Path, extra: &[&str], failpoint: Option<&str>) -> Output {
    train_steps(out, 6, extra, failpoint)
}

fn train_steps(out: &Path, steps: u32, extra: &[&str], failpoint: Option<&str>) -> Output {
    let mut c = Command::new(TRAIN);
    c.args([
        "--preset",
        "micro",
        "--checkpoint-every",
        "2",
        "--eval-every",
        "100",
    ])
    .args(["--steps", &steps.to_string()])
    .args([
        "--accum",
        "2",
        "--micro-batch",
        "2",
        "--seq-len",
        "8",
        "--out",
    ])
    .arg(out)
    .args(extra)
    .env("RAYON_NUM_THREADS", "1")
    .env("RUST_BACKTRACE", "1");
    match failpoint {
        Some(f) => c.env("NEXUS_LAB_FAILPOINT", f),
        None => c.env_remove("NEXUS_LAB_FAILPOINT"),
    };
    c.output().expect("train runs")
}

fn resume(out: &Path, extra: &[&str]) -> Output {
    Command::new(TRAIN)
        .args(["--resume", "--out"])
        .arg(out)
        .args(extra)
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("NEXUS_LAB_FAILPOINT")
        .output()
        .expect("train runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn checkpoint_of(out: &Path) -> PathBuf {
    nexus_lab::llama::checkpoint_dir(out).expect("a checkpoint")
}

/// The final model and metrics of a run: what bit-identical resumption must reproduce.
fn outcome(out: &Path) -> (Vec<u8>, String) {
    (
        std::fs::read(checkpoint_of(out).join("model.safetensors")).unwrap(),
        std::fs::read_to_string(out.join("metrics.jsonl")).unwrap(),
    )
}

#[test]
fn a_kill_at_every_point_of_the_checkpoint_protocol_resumes_bit_identically() {
    let reference = scratch("reference");
    let o = train(&reference, &[], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = outcome(&reference);
    // The second checkpoint (step 4) is killed at each point; for the points after its folder
    // is complete, also the first (step 2).
    let mut cases: Vec<String> = FAILPOINTS.iter().map(|p| format!("{p}@2")).collect();
    cases.extend(FAILPOINTS[2..].iter().map(|p| format!("{p}@1")));
    for case in &cases {
        let out = scratch("kill");
        let killed = train(&out, &[], Some(case));
        assert!(
            !killed.status.success(),
            "{case}: the failpoint did not stop the run"
        );
        let resumed = resume(&out, &[]);
        assert!(
            resumed.status.success(),
            "{case}: resume failed: {}",
            stderr(&resumed)
        );
        assert_eq!(outcome(&out), expected, "{case}: the resumed run differs");
        // Later checkpoints succeeded and the leftovers are gone: one complete checkpoint.
        let left: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["step-00000006".to_string()], "{case}");
        assert_eq!(
            std::fs::read_to_string(out.join("latest")).unwrap().trim(),
            "step-00000006"
        );
        assert!(!out.join("latest.tmp").exists(), "{case}");
        std::fs::remove_dir_all(out).ok();
    }
    std::fs::remove_dir_all(reference).ok();
}

#[test]
fn one_process_per_run_folder_and_no_silent_overwrite() {
    let out = scratch("lock");
    let o = train(&out, &[], None);
    assert!(o.status.success());
    // A folder holding a run is refused without --resume or --force.
    let again = train(&out, &["--seed", "7"], None);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("holds a run already"),
        "{}",
        stderr(&again)
    );
    let forced = train(&out, &["--seed", "7", "--force"], None);
    assert!(forced.status.success(), "{}", stderr(&forced));
    let steps: Vec<u64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        steps,
        vec![1, 2, 3, 4, 5, 6],
        "the replaced run's metrics are its own"
    );
    // While a process holds the folder, a second one gets a clear error.
    let lock = nexus_lab::llama::checkpoint::lock_run(&out).unwrap();
    let second = resume(&out, &["--steps", "8"]);
    assert_eq!(second.status.code(), Some(2));
    assert!(
        stderr(&second).contains("in use by another training process"),
        "{}",
        stderr(&second)
    );
    drop(lock);
    // A --force with a bad setting is refused before the run there is removed.
    let bad = train(&out, &["--force", "--seq-len", "1000"], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(checkpoint_of(&out).join("model.safetensors").exists());
    std::fs::remove_dir_all(&out).ok();
    // A run killed before its first checkpoint (metrics only) is named as such: there is
    // nothing to resume, --force starts it again.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("metrics.jsonl"), "{\"step\": 1, \"loss\": 5.5}\n").unwrap();
    let again = train(&out, &[], None);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("stopped before its first checkpoint")
            && stderr(&again).contains("--force"),
        "{}",
        stderr(&again)
    );
    let resumed = resume(&out, &[]);
    assert_eq!(resumed.status.code(), Some(2));
    assert!(
        stderr(&resumed).contains("before its first checkpoint"),
        "{}",
        stderr(&resumed)
    );
    // A diverged run says whether a checkpoint is there to resume from.
    let none = nexus_lab::Error::Diverged {
        step: 3,
        loss: f64::NAN,
        checkpoint: None,
    };
    assert!(none
        .to_string()
        .contains("before any checkpoint was written"));
    let some = nexus_lab::Error::Diverged {
        step: 5,
        loss: f64::INFINITY,
        checkpoint: Some(4),
    };
    assert!(some
        .to_string()
        .contains("last checkpoint (step 4) is left intact"));
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn resume_extends_the_run_and_refuses_what_cannot_change() {
    let out = scratch("resume");
    assert!(train(&out, &[], None).status.success());
    let refused = resume(&out, &["--seed", "9"]);
    assert_eq!(refused.status.code(), Some(2));
    let msg = stderr(&refused);
    assert!(
        msg.contains("`seed` cannot change on resume") && msg.lines().count() == 1,
        "{msg}"
    );
    let back = resume(&out, &["--steps", "4"]);
    assert!(stderr(&back).contains("would go back"), "{}", stderr(&back));
    let extended = resume(&out, &["--steps", "8"]);
    assert!(extended.status.success(), "{}", stderr(&extended));
    assert!(checkpoint_of(&out).ends_with("step-00000008"));
    // Every step logged once, and from step 7 on the learning rate follows the schedule of an
    // 8-step run: the schedule's end moved with --steps.
    let straight = scratch("resume-straight");
    assert!(train_steps(&straight, 8, &[], None).status.success());
    let lrs = |dir: &Path| -> Vec<(u64, f64)> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("lr").is_some())
            .map(|v| (v["step"].as_u64().unwrap(), v["lr"].as_f64().unwrap()))
            .collect()
    };
    let (ext, st) = (lrs(&out), lrs(&straight));
    assert_eq!(
        ext.iter().map(|x| x.0).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(&ext[6..], &st[6..]);
    std::fs::remove_dir_all(out).ok();
    std::fs::remove_dir_all(straight).ok();
}

/// Rewrites a checkpoint's digests as if its files had been written so: a foreign or edited
/// checkpoint that is consistent with itself, to reach the checks behind the digests.
fn reseal(dir: &Path) {
    let path = dir.join("state.json");
    let state: nexus_lab::llama::RunState =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    state.seal_and_write(dir).unwrap();
}

#[test]
fn damaged_checkpoints_are_errors_that_name_the_file_and_entry() {
    let out = scratch("damaged");
    assert!(train(&out, &[], None).status.success());
    let dir = checkpoint_of(&out);
    // An edited model shape, digests rewritten to match: the shape check names the key.
    let cfg_path = dir.join("config.json");
    let original = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(
        &cfg_path,
        original.replace("\"hidden_size\": 8", "\"hidden_size\": 9"),
    )
    .unwrap();
    reseal(&dir);
    let o = resume(&out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("config.json") && stderr(&o).contains("hidden_size"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&cfg_path, original).unwrap();
    reseal(&dir);
    // Optimizer moments missing: an empty tensor file, digests rewritten to match.
    let opt = dir.join("optimizer.safetensors");
    let saved = std::fs::read(&opt).unwrap();
    let empty: std::collections::HashMap<String, candle_core::Tensor> = Default::default();
    candle_core::safetensors::save(&empty, &opt).unwrap();
    reseal(&dir);
    let o = resume(&out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("optimizer.safetensors") && stderr(&o).contains("`m.0`"),
        "{}",
        stderr(&o)
    );
    // A corrupt file, digests as written: the digest check names it, and nothing is removed.
    std::fs::write(&opt, saved).unwrap();
    reseal(&dir);
    std::fs::write(&opt, b"not a tensor file").unwrap();
    let o = resume(&out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("optimizer.safetensors") && stderr(&o).contains("SHA-256"),
        "{}",
        stderr(&o)
    );
    assert!(dir.join("model.safetensors").exists());
    std::fs::remove_dir_all(out).ok();
}

/// The outcome of a two-step run resumed to six steps, undisturbed: what every resume of a
/// damaged two-step run must reproduce.
fn extended_reference(name: &str) -> (Vec<u8>, String) {
    let (out, _) = two_step_run(name);
    let o = resume(&out, &["--steps", "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = outcome(&out);
    std::fs::remove_dir_all(out).ok();
    expected
}

/// A run checkpointed at step 2 only (a two-step run), and the path of that checkpoint.
fn two_step_run(name: &str) -> (PathBuf, PathBuf) {
    let out = scratch(name);
    let o = train_steps(&out, 2, &[], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let step2 = out.join("checkpoints/step-00000002");
    assert!(step2.is_dir());
    (out, step2)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Resume takes the newest checkpoint that passes verification and deletes nothing before a
/// newer one is written: a damaged newer checkpoint, an empty folder and a stray file named
/// like a checkpoint are skipped with a warning naming them, the run resumes from step 2 and
/// ends bit-identical to an uninterrupted run.
#[test]
fn resume_skips_what_is_not_a_valid_checkpoint_and_deletes_nothing() {
    let expected = extended_reference("valid-ref");
    type Damage = fn(&Path, &Path) -> &'static str;
    let cases: [(&str, Damage); 4] = [
        ("truncated model", |root, step2| {
            copy_dir(step2, &root.join("step-00000004"));
            let f = root.join("step-00000004/model.safetensors");
            let bytes = std::fs::read(&f).unwrap();
            std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
            "step-00000004"
        }),
        ("empty folder", |root, _| {
            std::fs::create_dir_all(root.join("step-00000099")).unwrap();
            "step-00000099"
        }),
        ("stray file", |root, _| {
            std::fs::write(root.join("step-00000099"), b"stray").unwrap();
            "step-00000099"
        }),
        ("state of another step", |root, step2| {
            copy_dir(step2, &root.join("step-00000004"));
            "step-00000004"
        }),
    ];
    for (case, damage) in cases {
        let (out, step2) = two_step_run("valid");
        let named = damage(&out.join("checkpoints"), &step2);
        let o = resume(&out, &["--steps", "6"]);
        assert!(o.status.success(), "{case}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("warning") && stderr(&o).contains(named),
            "{case}: {}",
            stderr(&o)
        );
        assert!(outcome(&out) == expected, "{case}: the resumed run differs");
        std::fs::remove_dir_all(out).ok();
    }
    // Nothing valid at all: the resume is refused and every folder is still there.
    let (out, step2) = two_step_run("valid-none");
    std::fs::write(step2.join("model.safetensors"), b"").unwrap();
    let o = resume(&out, &["--steps", "6"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nothing was removed"), "{}", stderr(&o));
    assert!(step2.join("state.json").exists() && step2.join("optimizer.safetensors").exists());
    std::fs::remove_dir_all(out).ok();
}

/// A flipped byte in a tensor file, an edited field of the state, or a source file replaced
/// since the checkpoint: each resume is refused with a message naming the file, never a
/// silently different run; `--allow-changed-data` resumes over a changed source.
#[test]
fn corruption_and_changed_sources_are_refused() {
    fn flip(path: &Path, at: usize) {
        let mut b = std::fs::read(path).unwrap();
        let i = at.min(b.len() - 1);
        b[i] ^= 0x40;
        std::fs::write(path, b).unwrap();
    }
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let (out, step2) = two_step_run("flip");
        let len = std::fs::metadata(step2.join(file)).unwrap().len() as usize;
        flip(&step2.join(file), len - 3);
        let o = resume(&out, &["--steps", "4"]);
        assert_eq!(o.status.code(), Some(2), "{file}");
        assert!(stderr(&o).contains(file), "{file}: {}", stderr(&o));
        std::fs::remove_dir_all(out).ok();
    }
    for (field, from, to) in [
        ("step", "\"step\": 2", "\"step\": 3"),
        ("adam_steps", "\"adam_steps\": 2", "\"adam_steps\": 1"),
        ("lr", "\"lr\": 0.003", "\"lr\": 0.004"),
        ("seed", "\"seed\": 1", "\"seed\": 2"),
    ] {
        let (out, step2) = two_step_run("edit");
        let path = step2.join("state.json");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{field}: {text}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
        let o = resume(&out, &["--steps", "4"]);
        assert_eq!(o.status.code(), Some(2), "{field}");
        assert!(stderr(&o).contains("state.json"), "{field}: {}", stderr(&o));
        std::fs::remove_dir_all(out).ok();
    }
    let out = scratch("source");
    std::fs::create_dir_all(&out).unwrap();
    let data = out.join("data.txt");
    std::fs::write(
        &data,
        "the quick brown fox jumps over the lazy dog. ".repeat(40),
    )
    .unwrap();
    let source = format!("text={}", data.display());
    let run = out.join("run");
    let o = train_steps(&run, 2, &["--source", &source], None);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(
        &data,
        "a different text entirely, of another length. ".repeat(40),
    )
    .unwrap();
    let o = resume(&run, &["--steps", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("data.txt") && stderr(&o).contains("--allow-changed-data"),
        "{}",
        stderr(&o)
    );
    let o = resume(&run, &["--steps", "4", "--allow-changed-data"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(out).ok();
}

/// `metrics.jsonl` is cut back to its complete, valid records up to the checkpoint whatever
/// follows them (invalid UTF-8, a torn line, a record of a later step), each bad line named in a
/// warning, so a resumed run's metrics equal an uninterrupted run's.
#[test]
fn torn_metrics_are_cut_back_with_a_warning() {
    let expected = extended_reference("metrics-ref");
    let (out, _) = two_step_run("metrics");
    let path = out.join("metrics.jsonl");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.iter().filter(|&&b| b == b'\n').count();
    bytes
        .extend_from_slice(b"{\"step\": 3, \"loss\": 1.0}\n\xff\xfe not utf-8\n{\"step\": 4, \"lo");
    std::fs::write(&path, &bytes).unwrap();
    let o = resume(&out, &["--steps", "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    // The appended lines are n + 1 (a later step's record, dropped silently), n + 2 (not
    // UTF-8) and n + 3 (torn).
    let (bad, torn) = (format!("line {}:", n + 2), format!("line {}:", n + 3));
    assert!(err.contains(&bad) && err.contains(&torn), "{err}");
    assert!(!err.contains(&format!("line {}:", n + 1)), "{err}");
    assert!(outcome(&out) == expected, "the resumed run differs");
    std::fs::remove_dir_all(out).ok();
}

/// The checkpoint protocol's durability events, in order: each file synced, the folder synced,
/// renamed into place, its parent synced, then `latest` written, synced, renamed and the run
/// folder synced. A kill cannot show a missing sync (the page cache outlives the process); this
/// trace does.
#[test]
fn the_checkpoint_protocol_syncs_before_it_renames() {
    use nexus_lab::fsio::trace;
    use nexus_lab::llama::checkpoint;
    let out = scratch("trace");
    trace::start();
    checkpoint::write(&out, 7, |dir| {
        std::fs::write(dir.join("a.bin"), b"a").unwrap();
        std::fs::write(dir.join("b.bin"), b"b").unwrap();
        Ok(())
    })
    .unwrap();
    let events = trace::take();
    let (root, tmp, done) = (
        out.join("checkpoints"),
        out.join("checkpoints/step-00000007.tmp"),
        out.join("checkpoints/step-00000007"),
    );
    let expected = vec![
        format!("sync_file {}", tmp.join("a.bin").display()),
        format!("sync_file {}", tmp.join("b.bin").display()),
        format!("sync_dir {}", tmp.display()),
        format!("rename {} -> {}", tmp.display(), done.display()),
        format!("sync_dir {}", root.display()),
        format!("sync_file {}", out.join("latest.tmp").display()),
        format!(
            "rename {} -> {}",
            out.join("latest.tmp").display(),
            out.join("latest").display()
        ),
        format!("sync_dir {}", out.display()),
    ];
    assert_eq!(events, expected);
    std::fs::remove_dir_all(out).ok();
}

/// Every binary answers --help and --version, and bad flags exit with code 2 and one line
/// naming the flag, without a panic or backtrace.
#[test]
fn every_binary_uses_clap_and_names_bad_flags() {
    let bins = [
        env!("CARGO_BIN_EXE_train"),
        env!("CARGO_BIN_EXE_reproduce"),
        env!("CARGO_BIN_EXE_nexus_run"),
        env!("CARGO_BIN_EXE_pretrain"),
        env!("CARGO_BIN_EXE_llama_bench"),
    ];
    for bin in bins {
        for flag in ["--help", "--version"] {
            let o = Command::new(bin).arg(flag).output().unwrap();
            assert!(o.status.success(), "{bin} {flag}");
        }
        let o = Command::new(bin).arg("--no-such-flag").output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{bin}");
        assert!(
            stderr(&o).contains("--no-such-flag"),
            "{bin}: {}",
            stderr(&o)
        );
    }
    let cases: [(&str, &[&str], &str); 10] = [
        (
            env!("CARGO_BIN_EXE_llama_bench"),
            &["--repeats", "0"],
            "--repeats",
        ),
        (env!("CARGO_BIN_EXE_train"), &["--steps", "0"], "--steps"),
        (
            env!("CARGO_BIN_EXE_train"),
            &["--inner-lr", "-1"],
            "--inner-lr",
        ),
        (
            env!("CARGO_BIN_EXE_train"),
            &["--muon-lr", "NaN"],
            "--muon-lr",
        ),
        (
            env!("CARGO_BIN_EXE_nexus_run"),
            &["--held-out", "0"],
            "--held-out",
        ),
        (
            env!("CARGO_BIN_EXE_nexus_run"),
            &["--dim", "100000"],
            "--dim 100000",
        ),
        (env!("CARGO_BIN_EXE_reproduce"), &["--out", ""], "--out"),
        (env!("CARGO_BIN_EXE_pretrain"), &["--seeds", "0"], "--seeds"),
        (
            env!("CARGO_BIN_EXE_pretrain"),
            &["--no-balanced"],
            "--corpus",
        ),
        (
            env!("CARGO_BIN_EXE_pretrain"),
            &["--corpus", "data/manpages", "--no-balanced", "--no-skewed"],
            "--no-skewed",
        ),
    ];
    for (bin, args, named) in cases {
        let o = Command::new(bin)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{bin} {args:?}: {err}");
        assert!(err.contains(named), "{bin} {args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("stack backtrace"),
            "{err}"
        );
    }
}

#[test]
fn a_toml_type_error_names_the_key() {
    let dir = scratch("toml");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.toml");
    std::fs::write(&path, "preset = \"micro\"\nsteps = \"many\"\n").unwrap();
    let o = Command::new(TRAIN)
        .args(["--config"])
        .arg(&path)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("`steps`") && err.contains("line 2") && err.lines().count() == 1,
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// REPORT.md names the run of each report when they differ, and a failed write leaves no
/// temporary file.
#[test]
fn reports_are_labelled_per_report() {
    let dir = scratch("labels");
    let full = {
        let mut r =
            nexus_lab::report::load_all(Path::new("figures"), &nexus_lab::claims::ids()).unwrap();
        r.truncate(2);
        r
    };
    let mut mixed = full.clone();
    mixed[1].seed = 5;
    mixed[1].quick = true;
    nexus_lab::report::write_summary(&mixed, &[], &dir).unwrap();
    let text = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(
        text.contains("reports of several runs"),
        "the header must not claim one run"
    );
    assert!(text.contains("seed 5, --quick"));
    assert!(text.contains(&format!("seed {}, full", full[0].seed)));
    nexus_lab::report::write_summary(&full, &[], &dir).unwrap();
    let text = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    assert!(text.contains(&format!("every report: seed {}, full", full[0].seed)));
    // Writing into a path that is a folder fails at the rename and removes the temporary file.
    let target = dir.join("occupied.json");
    std::fs::create_dir_all(target.join("inside")).unwrap();
    assert!(nexus_lab::fsio::write_atomic(&target, b"{}").is_err());
    assert!(!dir.join("occupied.json.tmp").exists());
    std::fs::remove_dir_all(dir).ok();
}

/// Inputs that used to be accepted and should not be: each refused with a message naming it,
/// from the TOML file and from the flags alike (one set of range checks).
#[test]
fn bad_sources_and_settings_are_refused_naming_them() {
    use nexus_lab::llama::{FileSource, HeldOutSource, Source, TrainConfig};
    let dir = scratch("inputs");
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("a.txt");
    std::fs::write(&text, "some training text, long enough. ".repeat(20)).unwrap();
    let other = dir.join("b.txt");
    std::fs::write(&other, "other text, long enough as well. ".repeat(20)).unwrap();
    let src = |name: &str, path: &Path, weight: f64| FileSource {
        name: name.into(),
        path: path.into(),
        weight,
    };
    let invalid = |cfg: TrainConfig| cfg.validate().unwrap_err().to_string();
    let base = TrainConfig::default();
    // A held-out source that is a training source.
    let e = invalid(TrainConfig {
        sources: vec![src("a", &text, 1.0)],
        held_out: vec![HeldOutSource {
            name: "h".into(),
            path: text.clone(),
        }],
        ..base.clone()
    });
    assert!(e.contains("held-out") && e.contains("a.txt"), "{e}");
    // Duplicate and empty names.
    let e = invalid(TrainConfig {
        sources: vec![src("a", &text, 1.0), src("a", &other, 1.0)],
        ..base.clone()
    });
    assert!(e.contains("two sources are named `a`"), "{e}");
    let e = invalid(TrainConfig {
        sources: vec![src(" ", &text, 1.0)],
        ..base.clone()
    });
    assert!(e.contains("without a name"), "{e}");
    // A weight of 0, from a configuration and from the flag.
    let e = invalid(TrainConfig {
        sources: vec![src("a", &text, 0.0)],
        ..base.clone()
    });
    assert!(e.contains("weight") && e.contains("> 0"), "{e}");
    let o = Command::new(TRAIN)
        .args(["--source", &format!("a={}:0", text.display())])
        .arg("--out")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--source") && stderr(&o).contains("> 0"),
        "{}",
        stderr(&o)
    );
    // A JSONL whose texts are all empty.
    let jsonl = dir.join("empty.jsonl");
    std::fs::write(
        &jsonl,
        "{\"text\": \"\"}\n{\"text\": \"\"}\n{\"text\": \"\"}\n",
    )
    .unwrap();
    let e = Source::from_file("e", &jsonl).unwrap_err().to_string();
    assert!(e.contains("no text"), "{e}");
    // TOML: decay_fraction out of range, a weight under [[held_out]], an unknown key named at
    // its own line.
    let toml = dir.join("run.toml");
    std::fs::write(&toml, "steps = 5\ndecay_fraction = 2.0\n").unwrap();
    let e = TrainConfig::from_toml(&toml).unwrap_err().to_string();
    assert!(e.contains("decay_fraction") && e.contains("[0, 1]"), "{e}");
    std::fs::write(
        &toml,
        "steps = 5\n\n[[held_out]]\nname = \"x\"\npath = \"y\"\nweight = 2.0\n",
    )
    .unwrap();
    let e = TrainConfig::from_toml(&toml).unwrap_err().to_string();
    assert!(e.contains("key `weight` (line 6)"), "{e}");
    std::fs::write(
        &toml,
        "steps = 5\n\n[[sources]]\nname = \"x\"\npath = \"y\"\nwieght = 2\n",
    )
    .unwrap();
    let e = TrainConfig::from_toml(&toml).unwrap_err().to_string();
    assert!(e.contains("key `wieght` (line 6)"), "{e}");
    // A sequence longer than the preset's positions, and a batch that cannot fit in memory,
    // refused before anything is allocated.
    let e = invalid(TrainConfig {
        seq_len: 1 << 40,
        ..base.clone()
    });
    assert!(e.contains("seq_len") && e.contains("positions"), "{e}");
    let e = invalid(TrainConfig {
        micro_batch: 1 << 40,
        ..base.clone()
    });
    assert!(
        e.contains("micro_batch") && e.contains("between 1 and"),
        "{e}"
    );
    let e = invalid(TrainConfig {
        micro_batch: 1 << 20,
        ..base
    });
    assert!(e.contains("micro_batch") && e.contains("GiB"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

/// A Llama study stores each finished run under its `--out`: killed after five runs, it
/// cannot be published from its store alone (`--stored-only` names the nine missing runs), it
/// resumes from them (trains the other nine), a rerun with the same settings trains nothing
/// and writes the same report, and a changed setting trains again and says which.
#[test]
fn a_killed_study_resumes_from_its_finished_runs() {
    let out = scratch("study");
    let study = |extra: &[&str], failpoint: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pretrain"));
        c.args([
            "--quick",
            "--preset",
            "micro",
            "--seeds",
            "2",
            "--headline-seeds",
            "2",
            "--master-seeds",
            "1",
            "--jobs",
            "1",
            "--out",
        ])
        .arg(&out)
        .args(extra)
        .env("RAYON_NUM_THREADS", "1");
        match failpoint {
            Some(f) => c.env("NEXUS_LAB_FAILPOINT", f),
            None => c.env_remove("NEXUS_LAB_FAILPOINT"),
        };
        c.output().unwrap()
    };
    // The report without its throughput line (a measurement of this machine's speed).
    let report = || -> String {
        std::fs::read_to_string(out.join("reports/llama-pretrain.json"))
            .unwrap()
            .lines()
            .filter(|l| !l.contains("Training throughput"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let killed = study(&["--steps", "6"], Some("pretrain:run-stored@5"));
    assert!(!killed.status.success());
    assert!(!out.join("reports/llama-pretrain.json").exists());
    // Publishing from the store alone names what is missing and trains nothing.
    let partial = study(&["--steps", "6", "--stored-only"], None);
    assert_eq!(partial.status.code(), Some(2), "{}", stderr(&partial));
    assert!(
        stderr(&partial).contains("stored-only") && stderr(&partial).contains("9 of 14 runs"),
        "{}",
        stderr(&partial)
    );
    assert!(!out.join("reports/llama-pretrain.json").exists());
    let resumed = study(&["--steps", "6"], None);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("reused 5 of 14 runs") && stderr(&resumed).contains("trained 9"),
        "{}",
        stderr(&resumed)
    );
    let first = report();
    let again = study(&["--steps", "6"], None);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("reused 14 of 14 runs") && stderr(&again).contains("trained 0"),
        "{}",
        stderr(&again)
    );
    assert_eq!(report(), first);
    let published = study(&["--steps", "6", "--stored-only"], None);
    assert!(published.status.success(), "{}", stderr(&published));
    assert_eq!(report(), first);
    let changed = study(&["--steps", "7"], None);
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert!(
        stderr(&changed).contains("reused 0 of 14")
            && stderr(&changed)
                .contains("settings that differ: config.checkpoint_every, config.steps"),
        "{}",
        stderr(&changed)
    );
    std::fs::remove_dir_all(out).ok();
}

/// `reproduce` on one folder: a second run at once is refused; a run killed before its outputs
/// are installed leaves the folder as it was (its staging folder is discarded by the next run);
/// a run killed while installing is finished by the next run, so the folder ends up holding one
/// run's outputs, never a mix; stale `.tmp` files are removed; a foreign report is named before
/// any computation.
#[test]
fn reproduce_never_leaves_a_mix_of_two_runs() {
    let out = scratch("publish");
    let reproduce = |seed: &str, failpoint: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_reproduce"));
        c.args([
            "--quick",
            "--seeds",
            "1",
            "--only",
            "ctl-descent",
            "--only",
            "ctl-reptile",
            "--seed",
            seed,
            "--out",
        ])
        .arg(&out);
        match failpoint {
            Some(f) => c.env("NEXUS_LAB_FAILPOINT", f),
            None => c.env_remove("NEXUS_LAB_FAILPOINT"),
        };
        c.output().unwrap()
    };
    // The seed every report and REPORT.md name: one run's outputs, or a mix.
    let seeds_seen = || -> Vec<String> {
        let mut seen: Vec<String> = nexus_lab::report::load_all(&out, &[])
            .unwrap()
            .iter()
            .map(|r| r.seed.to_string())
            .collect();
        let summary = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
        for s in ["11", "22"] {
            if summary.contains(&format!("seed {s},")) {
                seen.push(s.to_string());
            }
        }
        seen.sort();
        seen.dedup();
        seen
    };
    let first = reproduce("11", None);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(seeds_seen(), vec!["11"]);
    // Killed after staging, before installing: nothing of seed 22 is installed.
    let killed = reproduce("22", Some("publish:staged"));
    assert!(!killed.status.success());
    assert_eq!(seeds_seen(), vec!["11"]);
    // Killed while installing (after the first file): the next run finishes the installation
    // before its own work, so the folder holds seed 22's outputs only, then its own.
    let killed = reproduce("22", Some("publish:installed-one@1"));
    assert!(!killed.status.success());
    assert!(out.join(".staging/COMMIT").is_file());
    std::fs::write(out.join("reports/stale.json.tmp"), b"{").unwrap();
    let lock = nexus_lab::fsio::DirLock::acquire(&out, ".publish.lock", "a test").unwrap();
    let refused = reproduce("33", None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("in use"), "{}", stderr(&refused));
    drop(lock);
    let mut c = Command::new(env!("CARGO_BIN_EXE_reproduce"));
    let repaired = c
        .args([
            "--quick",
            "--seeds",
            "1",
            "--only",
            "ctl-descent",
            "--seed",
            "22",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(repaired.status.success(), "{}", stderr(&repaired));
    assert!(
        stderr(&repaired).contains("finished installing"),
        "{}",
        stderr(&repaired)
    );
    assert_eq!(seeds_seen(), vec!["22"]);
    assert!(!out.join("reports/stale.json.tmp").exists());
    assert!(!out.join(".staging").exists());
    // A foreign file among the reports: named, before any computation.
    std::fs::write(out.join("reports/foreign.json"), b"[1, 2]").unwrap();
    let foreign = reproduce("11", None);
    assert_eq!(foreign.status.code(), Some(2));
    assert!(
        stderr(&foreign).contains("foreign.json") && !stderr(&foreign).contains("ctl-descent:"),
        "{}",
        stderr(&foreign)
    );
    std::fs::remove_dir_all(out).ok();
}
