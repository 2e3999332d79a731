//! `spinlift.toml` and `service_data`, through the real binary against the local FileSpin: each setting
//! comes from its flag, else its environment variable, else the config file, else the default;
//! `service_data` merges per key (flags, manifest, config file, default); bad files exit 2 saying where.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{LocalFileSpin, stderr_of, stdout_of};
use serde_json::{Value, json};
use spinlift_emulator::EmulatorConfig;

/// The emulator's key: distinctive, so that a test can tell it never reached the output.
const KEY: &str = "sk-config-test-5e1d0c9b7a";
const FILES: [&str; 3] = ["a.txt", "b.txt", "sub/c.txt"];

fn filespin() -> LocalFileSpin {
    LocalFileSpin::with(EmulatorConfig { api_key: KEY.to_owned(), ..EmulatorConfig::default() })
}

/// A directory with three files and `manifest.json` listing them (with `service_data` when given).
struct Batch {
    dir: tempfile::TempDir,
}

impl Batch {
    fn new(service_data: Option<Value>) -> Batch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for (i, name) in FILES.iter().enumerate() {
            std::fs::write(dir.path().join(name), format!("file {i}\n").repeat(100 * i + 1)).unwrap();
        }
        let mut manifest =
            json!({"version": 1, "assets": FILES.iter().map(|p| json!({"path": p})).collect::<Vec<_>>()});
        if let Some(sd) = service_data {
            manifest["service_data"] = sd;
        }
        std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        Batch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a config file with the given permission bits.
    fn config(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        set_mode(&path, mode);
        path
    }

    /// `spinlift run manifest.json ARGS` from the batch's directory, with `env` on top of an environment
    /// that holds none of spinlift's variables.
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_spinlift"));
        for var in [
            "FILESPIN_API_URL",
            "FILESPIN_API_KEY",
            "SPINLIFT_CONFIG",
            "SPINLIFT_API_RPS",
            "SPINLIFT_S3_RPS",
            "SPINLIFT_CONCURRENCY",
            "SPINLIFT_BWLIMIT",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.current_dir(self.dir.path()).args(["run", "manifest.json"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

fn describe(output: &Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), stdout_of(output), stderr_of(output))
}

/// The concurrency the run started with, from its first plain progress line.
fn started_concurrency(output: &Output) -> u32 {
    let stderr = stderr_of(output);
    let line = stderr.lines().find(|l| l.starts_with("progress:")).unwrap_or_else(|| panic!("{stderr}"));
    line.rsplit("concurrency ").next().unwrap().trim().parse().unwrap()
}

#[test]
fn a_config_file_alone_supplies_url_key_and_concurrency() {
    let filespin = filespin();
    let batch = Batch::new(None);
    // ./spinlift.toml is read without being named.
    batch.config(
        "spinlift.toml",
        &format!(
            "# nightly import\napi_url = \"{}\"\napi_key = \"{KEY}\"\nconcurrency = 3\napi_rps = 0\n",
            filespin.emulator.api_url()
        ),
        0o600,
    );
    let output = batch.run(&[], &["--progress-interval", "0"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(filespin.emulator.registrations().len(), FILES.len());
    assert_eq!(started_concurrency(&output), 3, "{}", describe(&output));
    assert!(
        !stderr_of(&output).contains("warning"),
        "a 0600 file is not warned about: {}",
        describe(&output)
    );

    // Named by --config or SPINLIFT_CONFIG instead, from anywhere.
    let elsewhere = Batch::new(None);
    let named = elsewhere.config(
        "nightly.toml",
        &format!("api_url = \"{}\"\napi_key = \"{KEY}\"\napi_rps = 0\n", filespin.emulator.api_url()),
        0o600,
    );
    let named = named.to_str().unwrap();
    for how in [&["--config", named][..], &[]] {
        let batch = Batch::new(None);
        let env: &[(&str, &str)] = if how.is_empty() { &[("SPINLIFT_CONFIG", named)] } else { &[] };
        let output = batch.run(env, &[&["-q"][..], how].concat());
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    }
    assert_eq!(filespin.emulator.registrations().len(), 3 * FILES.len());
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file() {
    let filespin = filespin();
    let url = filespin.emulator.api_url();
    let right_env =
        [("FILESPIN_API_URL", url.as_str()), ("FILESPIN_API_KEY", KEY), ("SPINLIFT_API_RPS", "0")];
    let wrong_key = "sk-wrong-0000";

    // A wrong key and an unreachable URL in the file: the environment's right ones win.
    let batch = Batch::new(None);
    batch.config(
        "spinlift.toml",
        &format!("api_url = \"http://127.0.0.1:9\"\napi_key = \"{wrong_key}\"\nconcurrency = 3\n"),
        0o600,
    );
    let output = batch.run(&right_env, &["--progress-interval", "0"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(started_concurrency(&output), 3, "the file still gives what the environment does not");

    // The right key in the file, a wrong one in the environment: the environment's wins, and FileSpin
    // refuses it.
    let batch = Batch::new(None);
    batch.config("spinlift.toml", &format!("api_url = \"{url}\"\napi_key = \"{KEY}\"\napi_rps = 0\n"), 0o600);
    let output = batch.run(&[("FILESPIN_API_KEY", wrong_key)], &["-q"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(stderr_of(&output).contains("401"), "{}", describe(&output));

    // ... unless the flag says otherwise.
    let output = batch.run(&[("FILESPIN_API_KEY", wrong_key)], &["-q", "--api-key", KEY]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    // Concurrency: file 3, environment 5, flag 2.
    let env = [&right_env[..], &[("SPINLIFT_CONCURRENCY", "5")]].concat();
    let batch = Batch::new(None);
    batch.config("spinlift.toml", "concurrency = 3\n", 0o600);
    let output = batch.run(&env, &["--progress-interval", "0"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(started_concurrency(&output), 5, "environment over file");
    let batch = Batch::new(None);
    batch.config("spinlift.toml", "concurrency = 3\n", 0o600);
    let output = batch.run(&env, &["--progress-interval", "0", "--concurrency", "2"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(started_concurrency(&output), 2, "flag over environment");

    // The file's api_rps reaches the dry run's estimate; the environment's beats it.
    let batch = Batch::new(None);
    batch.config("spinlift.toml", "api_rps = 7\n", 0o600);
    let output = batch.run(&[], &["--dry-run"]);
    assert!(stdout_of(&output).contains("API limit (7 requests/s"), "{}", describe(&output));
    let output = batch.run(&[("SPINLIFT_API_RPS", "9")], &["--dry-run"]);
    assert!(stdout_of(&output).contains("API limit (9 requests/s"), "{}", describe(&output));
}

#[test]
fn service_data_merges_per_key_flags_over_manifest_over_file_over_default() {
    let filespin = filespin();
    let env = [
        ("FILESPIN_API_URL", filespin.emulator.api_url()),
        ("FILESPIN_API_KEY", KEY.to_owned()),
        ("SPINLIFT_API_RPS", "0".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Nothing anywhere: the built-in default.
    let batch = Batch::new(None);
    let output = batch.run(&env, &["-q"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let registrations = filespin.emulator.registrations();
    assert_eq!(registrations.len(), FILES.len());
    for r in &registrations {
        assert_eq!(r.service_data["app"], "spinlift", "{}", r.service_data);
        assert_eq!(r.service_data["build"], env!("CARGO_PKG_VERSION"), "{}", r.service_data);
        assert!(r.service_data.get("deployment_data").is_none(), "{}", r.service_data);
    }

    // Every layer, each winning somewhere.
    let batch = Batch::new(Some(json!({
        "app": "from-manifest",
        "deployment_data": {"location": "manifest-location", "site": "manifest-site"}
    })));
    batch.config(
        "spinlift.toml",
        "[service_data]\napp = \"from-file\"\nbuild = \"file-build\"\n\
         [service_data.deployment_data]\nclient = \"file-client\"\nlocation = \"file-location\"\n\
         site = \"file-site\"\nshift = 3\n",
        0o644,
    );
    let output = batch.run(
        &env,
        &[
            "-q",
            "--service-build",
            "flag-build",
            "--deployment-data",
            "site=flag-site",
            "--deployment-data",
            "run=a=b",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let registrations = filespin.emulator.registrations();
    assert_eq!(registrations.len(), 2 * FILES.len());
    for r in &registrations[FILES.len()..] {
        let sd = &r.service_data;
        assert_eq!(sd["app"], "from-manifest", "manifest over file: {sd}");
        assert_eq!(sd["build"], "flag-build", "flag over file: {sd}");
        assert_eq!(
            sd["deployment_data"],
            json!({"client": "file-client", "location": "manifest-location", "site": "flag-site",
                   "shift": 3, "run": "a=b"}),
            "merged per key: {sd}"
        );
    }

    // The flag beats the manifest for `app` too, and the file's app shows when nothing else says.
    let batch = Batch::new(Some(json!({"app": "from-manifest"})));
    batch.config("spinlift.toml", "[service_data]\nbuild = \"file-build\"\n", 0o644);
    let output = batch.run(&env, &["-q", "--service-app", "flag-app"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let batch = Batch::new(None);
    batch.config("spinlift.toml", "[service_data]\napp = \"from-file\"\n", 0o644);
    let output = batch.run(&env, &["-q"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let registrations = filespin.emulator.registrations();
    for r in &registrations[2 * FILES.len()..3 * FILES.len()] {
        assert_eq!(
            (&r.service_data["app"], &r.service_data["build"]),
            (&json!("flag-app"), &json!("file-build"))
        );
    }
    for r in &registrations[3 * FILES.len()..] {
        assert_eq!(r.service_data["app"], "from-file");
        assert_eq!(r.service_data["build"], env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn bad_config_files_exit_2_saying_file_line_and_what_to_write() {
    let filespin = filespin();
    let env = [("FILESPIN_API_URL", filespin.emulator.api_url()), ("FILESPIN_API_KEY", KEY.to_owned())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cases: &[(&str, &[&str])] = &[
        (
            "api_rps = 0\nconcurency = 4\n",
            &["line 2, column 1", "`concurency`", "did you mean `concurrency`?"],
        ),
        ("[service_data]\napp = \"x\"\nbiuld = \"1\"\n", &["line 3, column 1", "did you mean `build`?"]),
        ("app = \"x\"\n", &["line 1", "`app` under [service_data]"]),
        ("totally_unrelated = 1\n", &["line 1", "unknown key `totally_unrelated`", "the keys are api_url"]),
        ("api_rps = 0\n\napi_url = \"http://x\n", &["line 3, column"]),
        ("concurrency = [\n", &["line 1"]),
        ("concurrency = 0\n", &["line 1, column 15", "from 1 to 4096"]),
        ("bwlimit = \"fast\"\n", &["line 1", "invalid bandwidth"]),
    ];
    for (text, expected) in cases {
        let batch = Batch::new(None);
        batch.config("spinlift.toml", text, 0o600);
        let output = batch.run(&env, &["-q"]);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{text:?}: {}", describe(&output));
        assert!(stderr.contains("spinlift.toml"), "{text:?}: names the file: {stderr}");
        for e in *expected {
            assert!(stderr.contains(e), "{text:?}: expected {e:?} in {stderr}");
        }
        // The dry run checks the file too.
        assert_eq!(batch.run(&env, &["--dry-run"]).status.code(), Some(2), "{text:?}");
    }

    // A named file that does not exist.
    let batch = Batch::new(None);
    let output = batch.run(&env, &["-q", "--config", "no-such.toml"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(stderr_of(&output).contains("no-such.toml") && stderr_of(&output).contains("does not exist"));
    let output = batch.run(&[&env[..], &[("SPINLIFT_CONFIG", "gone.toml")]].concat(), &["-q"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(stderr_of(&output).contains("gone.toml"), "{}", describe(&output));

    // Nothing was asked of FileSpin.
    assert_eq!(filespin.emulator.stats().api_requests, 0);
}

#[cfg(unix)]
#[test]
fn a_key_in_a_readable_config_file_is_warned_about_and_never_printed() {
    let filespin = filespin();
    let url = filespin.emulator.api_url();
    let assert_secret = |output: &Output, key: &str| {
        assert!(
            !stdout_of(output).contains(key) && !stderr_of(output).contains(key),
            "the key was printed: {}",
            describe(output)
        );
    };

    // Readable by others: warned (with what to do), and the run goes on.
    let batch = Batch::new(None);
    batch.config("spinlift.toml", &format!("api_url = \"{url}\"\napi_key = \"{KEY}\"\napi_rps = 0\n"), 0o644);
    let output = batch.run(&[], &["--progress-interval", "0"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("warning") && stderr.contains("spinlift.toml"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(stderr.contains("0644"), "{stderr}");
    assert_secret(&output, KEY);

    // Group-readable counts too; a file without a key is not warned about.
    set_mode(&batch.path("spinlift.toml"), 0o640);
    let output = batch.run(&[], &["--dry-run"]);
    assert!(stderr_of(&output).contains("chmod 600"), "{}", describe(&output));
    batch.config("spinlift.toml", "api_rps = 0\n", 0o644);
    let output = batch.run(&[], &["--dry-run"]);
    assert!(!stderr_of(&output).contains("warning"), "{}", describe(&output));

    // A wrong key from the file: refused, not shown.
    let wrong = "sk-wrong-from-file-77ab";
    let batch = Batch::new(None);
    batch.config(
        "spinlift.toml",
        &format!("api_url = \"{url}\"\napi_key = \"{wrong}\"\napi_rps = 0\n"),
        0o600,
    );
    let output = batch.run(&[], &["-q"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert_secret(&output, wrong);

    // Errors on the key's own line do not quote it.
    for text in [
        format!("api_key = \"{wrong}\nconcurrency = 2\n"),
        format!("api_key = \"{wrong}\" x\n"),
        format!("api_key = {wrong}\n"),
        format!("[service_data]\napi_key = \"{wrong}\"\n"),
    ] {
        let batch = Batch::new(None);
        batch.config("spinlift.toml", &text, 0o600);
        let output = batch.run(&[], &["-q"]);
        assert_eq!(output.status.code(), Some(2), "{text:?}: {}", describe(&output));
        assert!(stderr_of(&output).contains("line"), "{text:?}: {}", describe(&output));
        assert_secret(&output, wrong);
    }
}
