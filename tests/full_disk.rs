//! A full disk, made for real: a small tmpfs, filled. Mounting needs root, so these tests are
//! `#[ignore]`d in a plain `cargo test` and run by `.ci/run` (as root) with
//! `cargo test --test integration full_disk -- --ignored`. Each checks that a write that runs
//! out of space names its file, leaves what was there whole, and that the run continues once
//! space is back.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A tmpfs of `kib` KiB, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, kib: u64) -> Self {
        let dir =
            std::env::temp_dir().join(format!("nexus-lab-full-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root: run these tests as .ci/run does"
        );
        Self(dir)
    }

    /// Fills the file system: a filler file grows until the disk is full.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        Command::new("umount").arg(&self.0).status().ok();
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it"]
fn full_disk_atomic_write_names_the_file_and_keeps_the_old_one() {
    let disk = Tmpfs::mount("fsio", 64);
    let path = disk.0.join("report.json");
    nexus_lab::fsio::write_atomic(&path, b"old").unwrap();
    let filler = disk.fill();
    let e = nexus_lab::fsio::write_atomic(&path, &vec![b'x'; 32 << 10])
        .unwrap_err()
        .to_string();
    assert!(e.contains("report.json"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert!(!nexus_lab::fsio::tmp_path(&path, false).exists());
    std::fs::remove_file(filler).unwrap();
    nexus_lab::fsio::write_atomic(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
}

fn train(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args([
            "--preset",
            "micro",
            "--seq-len",
            "8",
            "--accum",
            "2",
            "--micro-batch",
            "2",
            "--checkpoint-every",
            "2",
            "--eval-every",
            "100",
            "--out",
        ])
        .arg(out)
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it"]
fn full_disk_checkpoint_fails_cleanly_and_the_run_resumes() {
    // The reference: the same run on an ordinary disk.
    let reference = std::env::temp_dir().join(format!("nexus-lab-full-ref-{}", std::process::id()));
    std::fs::remove_dir_all(&reference).ok();
    assert!(train(&reference, &["--steps", "2"]).status.success());
    assert!(train(&reference, &["--resume", "--steps", "4"])
        .status
        .success());
    let expected =
        std::fs::read(reference.join("checkpoints/step-00000004/model.safetensors")).unwrap();
    std::fs::remove_dir_all(&reference).ok();

    let disk = Tmpfs::mount("train", 1024);
    let out = disk.0.join("run");
    let o = train(&out, &["--steps", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let filler = disk.fill();
    let o = train(&out, &["--resume", "--steps", "4"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The error names a file, and the step-2 checkpoint still verifies.
    assert!(
        stderr(&o).contains(&out.display().to_string()),
        "{}",
        stderr(&o)
    );
    let (dir, state) = nexus_lab::llama::newest_valid(&out).unwrap();
    assert_eq!(state.step, 2, "{}", dir.display());
    std::fs::remove_file(filler).unwrap();
    let o = train(&out, &["--resume", "--steps", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = std::fs::read(out.join("checkpoints/step-00000004/model.safetensors")).unwrap();
    assert!(
        got == expected,
        "the resumed run differs from the reference"
    );
}

#[test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it"]
fn full_disk_reproduce_leaves_the_last_run_whole() {
    let disk = Tmpfs::mount("reproduce", 4096);
    let out = disk.0.join("figures");
    let reproduce = |seed: &str| {
        Command::new(env!("CARGO_BIN_EXE_reproduce"))
            .args([
                "--quick",
                "--seeds",
                "1",
                "--only",
                "ctl-descent",
                "--seed",
                seed,
            ])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = reproduce("11");
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read(out.join("reports/ctl-descent.json")).unwrap();
    let summary = std::fs::read(out.join("REPORT.md")).unwrap();
    let filler = disk.fill();
    let o = reproduce("22");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&out.display().to_string()),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(out.join("reports/ctl-descent.json")).unwrap(),
        before
    );
    assert_eq!(std::fs::read(out.join("REPORT.md")).unwrap(), summary);
    std::fs::remove_file(filler).unwrap();
    let o = reproduce("22");
    assert!(o.status.success(), "{}", stderr(&o));
    let after = nexus_lab::report::load_all(&out, &[]).unwrap();
    assert!(after.iter().all(|r| r.seed == 22));
}
