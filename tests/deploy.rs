//! The container image and the Kubernetes example keep the promises of deploy/kubernetes/README.md:
//! the Job runs one pod per shard of `--shards N`, takes the key from the example Secret, keeps every
//! shard's checkpoint on the shared claim of pvc.yaml, retries interrupted pods but not finished runs
//! with failures, and runs unprivileged as the Dockerfile's user. Nothing here needs a cluster:
//! the files are read and their fields compared.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use yaml_serde::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file (empty ones, e.g. after a trailing `---`, left out).
fn documents(relative: &str) -> Vec<Value> {
    let text = read(relative);
    yaml_serde::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap_or_else(|e| panic!("{relative}: {e}")))
        .filter(|document| !document.is_null())
        .collect()
}

/// The one document of a file that must hold exactly one.
fn document(relative: &str) -> Value {
    let mut documents = documents(relative);
    assert_eq!(documents.len(), 1, "{relative} should hold exactly one document");
    documents.remove(0)
}

/// The value at a dotted path of mapping keys, e.g. `spec.template.spec`.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |value, key| {
        value.get(key).unwrap_or_else(|| panic!("no `{key}` on the way to `{path}`"))
    })
}

fn str_at<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path).as_str().unwrap_or_else(|| panic!("`{path}` is not a string"))
}

fn u64_at(value: &Value, path: &str) -> u64 {
    at(value, path).as_u64().unwrap_or_else(|| panic!("`{path}` is not a non-negative integer"))
}

fn seq_at<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    at(value, path).as_sequence().unwrap_or_else(|| panic!("`{path}` is not a sequence"))
}

/// The element of a sequence of mappings whose `name` is `name`.
fn named<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items
        .iter()
        .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("nothing named `{name}`"))
}

/// Whether `path` is strictly inside directory `dir` (component-wise: /state2 is not in /state).
fn inside(path: &str, dir: &str) -> bool {
    Path::new(path).starts_with(dir) && Path::new(path) != Path::new(dir)
}

fn job() -> Value {
    document("deploy/kubernetes/job.yaml")
}

fn pod_spec(job: &Value) -> &Value {
    at(job, "spec.template.spec")
}

/// The Job's spinlift container.
fn container(job: &Value) -> &Value {
    named(seq_at(pod_spec(job), "containers"), "spinlift")
}

fn args(container: &Value) -> Vec<&str> {
    seq_at(container, "args")
        .iter()
        .map(|arg| arg.as_str().unwrap_or_else(|| panic!("argument {arg:?} is not a string")))
        .collect()
}

/// The value of `--name=VALUE` or `--name VALUE`.
fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    args.iter().enumerate().find_map(|(i, arg)| match arg.strip_prefix(long.as_str()) {
        Some(rest) if rest.starts_with('=') => Some(&rest[1..]),
        Some("") => args.get(i + 1).copied(),
        _ => None,
    })
}

/// `(mountPath, volume name, readOnly)` of each of the container's mounts.
fn mounts(container: &Value) -> Vec<(&str, &str, bool)> {
    seq_at(container, "volumeMounts")
        .iter()
        .map(|m| {
            let read_only = m.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
            (str_at(m, "mountPath"), str_at(m, "name"), read_only)
        })
        .collect()
}

/// The mount that holds `path`, if any.
fn mount_of<'a>(container: &'a Value, path: &str) -> Option<(&'a str, &'a str, bool)> {
    mounts(container).into_iter().find(|(dir, _, _)| inside(path, dir))
}

#[test]
fn every_yaml_file_parses_into_named_kubernetes_objects() {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml"))
        .collect();
    files.sort();
    let names: Vec<_> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["job.yaml", "pvc.yaml", "secret.example.yaml"] {
        assert!(names.iter().any(|n| n == expected), "deploy/kubernetes/{expected} is missing");
    }
    for name in names {
        let relative = format!("deploy/kubernetes/{name}");
        let documents = documents(&relative);
        assert!(!documents.is_empty(), "{relative} holds no document");
        for document in &documents {
            for field in ["apiVersion", "kind", "metadata.name"] {
                assert!(!str_at(document, field).is_empty(), "{relative}: empty `{field}`");
            }
        }
    }
}

#[test]
fn the_job_is_indexed_with_one_pod_per_shard() {
    let job = job();
    assert_eq!(str_at(&job, "apiVersion"), "batch/v1");
    assert_eq!(str_at(&job, "kind"), "Job");
    // Indexed: each pod gets JOB_COMPLETION_INDEX, the shard `--shards N` runs.
    assert_eq!(str_at(&job, "spec.completionMode"), "Indexed");

    let args = args(container(&job));
    assert_eq!(args.first(), Some(&"run"), "the container runs `spinlift run`: {args:?}");
    assert_eq!(flag(&args, "shard"), None, "the shard index comes from JOB_COMPLETION_INDEX, not --shard");
    let shards: u64 = flag(&args, "shards")
        .expect("the container passes --shards N")
        .parse()
        .expect("--shards takes a number");
    assert!(shards >= 2, "a sharded example needs at least 2 shards, not {shards}");
    assert_eq!(u64_at(&job, "spec.completions"), shards, "one completion per shard");
    assert_eq!(u64_at(&job, "spec.parallelism"), shards, "every shard at once");

    // The walkthrough's commands name the same N.
    let readme = read("deploy/kubernetes/README.md");
    let mut mentioned = 0;
    for (i, _) in readme.match_indices("--shards") {
        let n: String = readme[i + "--shards".len()..]
            .trim_start_matches(['=', ' '])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !n.is_empty() {
            assert_eq!(n.parse::<u64>().unwrap(), shards, "deploy/kubernetes/README.md says --shards {n}");
            mentioned += 1;
        }
    }
    assert!(mentioned > 0, "deploy/kubernetes/README.md never shows `--shards {shards}`");
}

/// The action the Job's podFailurePolicy takes on `code` from the spinlift container (`Count`,
/// the default, when no rule matches).
fn action_on_exit(job: &Value, code: u64) -> String {
    let Some(rules) = job.get("spec").and_then(|s| s.get("podFailurePolicy")) else {
        return "Count".into();
    };
    for rule in seq_at(rules, "rules") {
        let Some(on) = rule.get("onExitCodes") else { continue };
        if let Some(name) = on.get("containerName").and_then(Value::as_str)
            && name != "spinlift"
        {
            continue;
        }
        let values: Vec<u64> = seq_at(on, "values").iter().map(|v| v.as_u64().expect("exit code")).collect();
        let matches = match str_at(on, "operator") {
            "In" => values.contains(&code),
            "NotIn" => !values.contains(&code),
            other => panic!("unknown operator {other}"),
        };
        if matches {
            return str_at(rule, "action").to_owned();
        }
    }
    "Count".into()
}

#[test]
fn interrupted_pods_are_retried_and_finished_runs_are_not() {
    let job = job();
    let pod = pod_spec(&job);
    let restart = str_at(pod, "restartPolicy");
    assert!(matches!(restart, "Never" | "OnFailure"), "restartPolicy {restart} is not valid for a Job");
    if job.get("spec").and_then(|s| s.get("podFailurePolicy")).is_some() {
        assert_eq!(restart, "Never", "a podFailurePolicy needs restartPolicy: Never");
    }
    if at(&job, "spec").get("backoffLimitPerIndex").is_some() {
        assert_eq!(
            str_at(&job, "spec.completionMode"),
            "Indexed",
            "backoffLimitPerIndex needs an Indexed Job"
        );
        assert!(u64_at(&job, "spec.backoffLimitPerIndex") >= 1, "a killed pod must get another try");
    }

    // README "Exit codes": 130 is an interruption by SIGTERM, which only a deletion sends: retried
    // without using up the shard's tries (deploy/kubernetes/README.md). 137 is SIGKILL (out of
    // memory, or the grace period ran out): retried, up to backoffLimitPerIndex times. Both resume
    // from the checkpoint.
    assert_eq!(action_on_exit(&job, 130), "Ignore", "an interrupted pod is retried without counting");
    assert_eq!(action_on_exit(&job, 137), "Count", "a killed pod is retried a bounded number of times");
    // 1: finished with entries failed for good; 2: could not start or stopped batch-wide. The same
    // pod again would end the same way: the index fails at once instead of using up its retries.
    for code in [1, 2] {
        let action = action_on_exit(&job, code);
        assert!(
            matches!(action.as_str(), "FailIndex" | "FailJob"),
            "exit {code} must not be retried: {action}"
        );
    }
    // The API refuses FailIndex without backoffLimitPerIndex.
    let fail_index =
        seq_at(&job, "spec.podFailurePolicy.rules").iter().any(|r| str_at(r, "action") == "FailIndex");
    if fail_index {
        assert!(
            at(&job, "spec").get("backoffLimitPerIndex").is_some(),
            "FailIndex needs backoffLimitPerIndex"
        );
    }
    // Evictions, preemption, drained nodes: retried without counting.
    let disruption = seq_at(&job, "spec.podFailurePolicy.rules").iter().find(|rule| {
        rule.get("onPodConditions").and_then(Value::as_sequence).is_some_and(|conditions| {
            // `status` is required: the API schema rejects a condition without it.
            conditions
                .iter()
                .any(|c| str_at(c, "type") == "DisruptionTarget" && str_at(c, "status") == "True")
        })
    });
    assert_eq!(disruption.map(|rule| str_at(rule, "action")), Some("Ignore"), "a disrupted pod is retried");

    // On SIGTERM spinlift gives requests in flight 10 s, then flushes its journal: the kubelet must
    // wait longer than that before SIGKILL (the default is 30 s).
    let grace = pod.get("terminationGracePeriodSeconds").map_or(30, |g| g.as_u64().expect("seconds"));
    assert!(grace > 10, "terminationGracePeriodSeconds {grace} leaves spinlift no time to flush");
}

#[test]
fn the_api_key_comes_from_the_example_secret() {
    let job = job();
    let container = container(&job);
    let key = named(seq_at(container, "env"), "FILESPIN_API_KEY");
    assert!(key.get("value").is_none(), "the key must not be written into the Job");
    let secret_name = str_at(key, "valueFrom.secretKeyRef.name");
    let secret_key = str_at(key, "valueFrom.secretKeyRef.key");
    assert_eq!(
        flag(&args(container), "api-key"),
        None,
        "flags show in process lists: the key comes from env"
    );

    let secret = document("deploy/kubernetes/secret.example.yaml");
    assert_eq!(str_at(&secret, "kind"), "Secret");
    assert_eq!(str_at(&secret, "metadata.name"), secret_name, "the Job refers to another secret");
    let value = secret
        .get("stringData")
        .and_then(|data| data.get(secret_key))
        .or_else(|| secret.get("data").and_then(|data| data.get(secret_key)))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("secret.example.yaml has no `{secret_key}`"));
    assert!(value.contains("REPLACE"), "secret.example.yaml must hold a placeholder, not a key");
}

#[test]
fn checkpoints_and_reports_live_on_the_shared_claim() {
    let job = job();
    let container = container(&job);
    let args = args(container);

    let pvc = document("deploy/kubernetes/pvc.yaml");
    assert_eq!(str_at(&pvc, "kind"), "PersistentVolumeClaim");
    let claim = str_at(&pvc, "metadata.name");
    let modes = seq_at(&pvc, "spec.accessModes");
    assert!(
        modes.iter().any(|m| m.as_str() == Some("ReadWriteMany")),
        "a replaced pod may run on another node: the claim must be ReadWriteMany, not {modes:?}"
    );

    let volume = seq_at(pod_spec(&job), "volumes")
        .iter()
        .find(|v| {
            v.get("persistentVolumeClaim").and_then(|c| c.get("claimName")).and_then(Value::as_str)
                == Some(claim)
        })
        .unwrap_or_else(|| panic!("no volume of the Job uses the claim `{claim}` of pvc.yaml"));
    let volume = str_at(volume, "name");

    for name in ["checkpoint", "report"] {
        let path = flag(&args, name).unwrap_or_else(|| panic!("the Job passes no --{name}"));
        let (dir, mounted, read_only) =
            mount_of(container, path).unwrap_or_else(|| panic!("--{name} {path} is on no mounted volume"));
        assert_eq!(mounted, volume, "--{name} {path} is under {dir}, not on the claim `{claim}`");
        assert!(!read_only, "{dir} holds --{name} {path} and is mounted read-only");
    }
}

#[test]
fn the_manifest_is_on_a_mounted_volume() {
    let job = job();
    let container = container(&job);
    let args = args(container);
    let manifest = args.get(1).copied().expect("`run MANIFEST`");
    assert!(!manifest.starts_with('-'), "the manifest comes right after `run`: {args:?}");
    assert!(Path::new(manifest).is_absolute(), "the manifest path {manifest} is not absolute");
    let (dir, volume, _) = mount_of(container, manifest)
        .unwrap_or_else(|| panic!("the manifest {manifest} is on no mounted volume: the image holds none"));
    let volumes = seq_at(pod_spec(&job), "volumes");
    named(volumes, volume); // the mount's volume exists
    assert!(dir != "/", "{manifest}: a volume mounted at / hides the image");
}

#[test]
fn the_pods_run_unprivileged_and_small() {
    let job = job();
    let pod = pod_spec(&job);
    let container = container(&job);
    let non_root =
        |v: &Value| v.get("securityContext").and_then(|s| s.get("runAsNonRoot")).and_then(Value::as_bool);
    assert_eq!(non_root(container).or(non_root(pod)), Some(true), "runAsNonRoot must be true");
    let security = at(container, "securityContext");
    assert_eq!(at(security, "readOnlyRootFilesystem").as_bool(), Some(true));
    assert_eq!(at(security, "allowPrivilegeEscalation").as_bool(), Some(false));
    let dropped = seq_at(security, "capabilities.drop");
    assert!(
        dropped.iter().any(|c| c.as_str() == Some("ALL")),
        "capabilities.drop must hold ALL: {dropped:?}"
    );
    assert!(security.get("capabilities").and_then(|c| c.get("add")).is_none(), "no capability is needed");
    for kind in ["requests", "limits"] {
        str_at(container, &format!("resources.{kind}.memory"));
    }
}

/// `(uid, gid)` of the Dockerfile's last stage's `USER`, and the number of stages.
fn dockerfile_user() -> (u64, Option<u64>, usize) {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let instruction = |line: &str, name: &str| {
        line.split_whitespace().next().is_some_and(|word| word.eq_ignore_ascii_case(name))
    };
    let stages: Vec<usize> = (0..lines.len()).filter(|&i| instruction(lines[i], "FROM")).collect();
    let runtime = &lines[*stages.last().expect("the Dockerfile has no FROM")..];
    assert!(runtime.iter().any(|l| instruction(l, "ENTRYPOINT")), "the runtime stage has no ENTRYPOINT");
    let user = runtime
        .iter()
        .rev()
        .find(|l| instruction(l, "USER"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the runtime stage sets no USER: the image would run as root");
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user, None),
    };
    let number = |s: &str| {
        s.parse::<u64>()
            .unwrap_or_else(|_| panic!("USER {user}: runAsNonRoot can only verify a numeric user"))
    };
    (number(uid), gid.map(number), stages.len())
}

#[test]
fn the_image_is_built_in_stages_and_runs_as_the_jobs_user() {
    let (uid, gid, stages) = dockerfile_user();
    assert!(stages >= 2, "the Dockerfile should build in one stage and run in another, not {stages}");
    assert_ne!(uid, 0, "the image's USER is root");
    assert_ne!(gid, Some(0), "the image's group is root");

    for file in ["job.yaml", "toolbox.yaml"] {
        let relative = format!("deploy/kubernetes/{file}");
        let Some(object) = documents(&relative).into_iter().next() else { continue };
        let pod = if str_at(&object, "kind") == "Job" {
            pod_spec(&object).clone()
        } else {
            at(&object, "spec").clone()
        };
        let context =
            |name: &str| pod.get("securityContext").and_then(|s| s.get(name)).and_then(Value::as_u64);
        if let Some(run_as) = context("runAsUser") {
            assert_eq!(run_as, uid, "{relative} runs as {run_as}, the image as {uid}");
        }
        if let (Some(run_as), Some(gid)) = (context("runAsGroup"), gid) {
            assert_eq!(run_as, gid, "{relative} runs as group {run_as}, the image as {gid}");
        }
    }

    // The builder's toolchain is the workspace's (rust-version in Cargo.toml).
    let cargo = read("Cargo.toml");
    let version = cargo
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"'))
        .expect("rust-version in Cargo.toml");
    assert!(read("Dockerfile").contains(&format!("rust:{version}")), "the builder is not rust:{version}");
}

/// A volume without its name: where its files come from.
fn source(volume: &Value) -> Value {
    let mut volume = volume.as_mapping().expect("a volume is a mapping").clone();
    volume.remove("name");
    Value::Mapping(volume)
}

#[test]
fn the_toolbox_mounts_what_the_job_does() {
    let job = job();
    let toolbox = document("deploy/kubernetes/toolbox.yaml");
    let tool = &seq_at(&toolbox, "spec.containers")[0];
    assert_eq!(str_at(tool, "image"), str_at(container(&job), "image"), "the toolbox runs another image");
    let job_volumes = seq_at(pod_spec(&job), "volumes");
    for (dir, volume, _) in mounts(container(&job)) {
        let (_, theirs, _) = mounts(tool)
            .into_iter()
            .find(|(d, _, _)| *d == dir)
            .unwrap_or_else(|| panic!("the toolbox does not mount {dir}"));
        assert_eq!(
            source(named(seq_at(&toolbox, "spec.volumes"), theirs)),
            source(named(job_volumes, volume)),
            "the toolbox's {dir} is another volume than the Job's"
        );
    }
}

#[test]
fn the_build_context_keeps_what_cargo_needs() {
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned())
        .collect();
    assert!(ignored.iter().any(|l| l == "target"), ".dockerignore should leave out target/ (gigabytes)");
    // benches/: Cargo.toml names its bench targets, and cargo refuses a manifest whose targets are missing.
    for needed in ["Cargo.toml", "Cargo.lock", "src", "crates", "benches"] {
        assert!(!ignored.iter().any(|l| l == needed), ".dockerignore leaves out {needed}, which cargo reads");
    }
    // `**/target` would also drop source directories called target (cc's src/target/ in a vendored tree).
    assert!(!ignored.iter().any(|l| l.starts_with("**/target")), ".dockerignore: `**/target` drops sources");
}
