//! The README's command-line reference and the binary's `--help` say the same thing.

use std::collections::BTreeSet;

fn flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_flag_in_the_readme_synopsis_is_in_help_and_back() {
    let readme = include_str!("../README.md");
    let start = readme.find("### The command line").expect("the README has a CLI section");
    let block = &readme[start..];
    let block = &block[block.find("```").unwrap() + 3..];
    let block = &block[..block.find("```").unwrap()];

    let mut synopsis: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("spinlift ") {
            let command = rest.split_whitespace().next().unwrap().to_owned();
            synopsis.push((command, rest.to_owned()));
        } else if let Some(last) = synopsis.last_mut() {
            last.1.push(' ');
            last.1.push_str(line);
        }
    }
    let commands: Vec<&str> = synopsis.iter().map(|(c, _)| c.as_str()).collect();
    let mut listed: Vec<String> = commands.iter().map(|c| c.to_string()).collect();
    listed.sort_unstable();
    let mut in_help = self::commands(&help(None));
    in_help.sort_unstable();
    assert_eq!(listed, in_help, "every command of `spinlift --help` has a line in the README synopsis");

    let run = synopsis.iter().find(|(c, _)| c == "run").map(|(_, t)| t.clone()).unwrap_or_default();
    for (command, text) in &synopsis {
        // `spinlift verify MANIFEST [same options as run]`.
        let text = if text.contains("same options as run") { &run } else { text };
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_spinlift"))
            .args([command.as_str(), "--help"])
            .output()
            .unwrap();
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).unwrap();
        let mut in_help = flags(&help);
        for generic in ["--help", "--version", "--log-file", "--log-format"] {
            in_help.remove(generic);
        }
        assert_eq!(flags(text), in_help, "`spinlift {command}`: README synopsis vs --help");
    }
}

/// Where the `--help` snapshots live, one file per command: `help-spinlift.txt` for the top level,
/// `help-<command>.txt` for each subcommand.
const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots");
const REFRESH: &str = "SPINLIFT_UPDATE_SNAPSHOTS=1 cargo test --test cli_reference";

/// `spinlift [COMMAND] --help` as a user sees it on a 100-column terminal, in an environment without
/// any of spinlift's variables (clap prints their values), colourless.
fn help(command: Option<&str>) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spinlift"));
    cmd.env_clear().env("COLUMNS", "100").env("NO_COLOR", "1");
    cmd.args(command).arg("--help");
    let output = cmd.output().unwrap();
    assert!(output.status.success(), "{command:?} --help: {}", String::from_utf8_lossy(&output.stderr));
    // Trailing spaces (clap leaves some on blank lines) are dropped: editors strip them from snapshots.
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

/// The subcommands the top-level help lists (without `help`).
fn commands(top_help: &str) -> Vec<String> {
    top_help
        .lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// A line diff (longest common subsequence): `-` for the snapshot's lines, `+` for the binary's.
fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("line {:>3} - {}\n", i + 1, a[i]));
            i += 1;
        } else {
            out.push_str(&format!("line {:>3} + {}\n", j + 1, b[j]));
            j += 1;
        }
    }
    out
}

#[test]
fn help_matches_the_committed_snapshots() {
    let update = std::env::var_os("SPINLIFT_UPDATE_SNAPSHOTS").is_some_and(|v| v != "0" && !v.is_empty());
    let top = help(None);
    let commands = commands(&top);
    assert!(commands.iter().any(|c| c == "run"), "no commands found in:\n{top}");
    let mut pages = vec![("spinlift".to_owned(), top.clone())];
    pages.extend(commands.iter().map(|c| (c.clone(), help(Some(c)))));

    let mut problems = Vec::new();
    let mut expected_files = BTreeSet::new();
    for (name, text) in &pages {
        let file = format!("help-{name}.txt");
        let path = std::path::Path::new(SNAPSHOTS).join(&file);
        expected_files.insert(file.clone());
        let committed = std::fs::read_to_string(&path).ok();
        if committed.as_deref() == Some(text.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(SNAPSHOTS).unwrap();
            std::fs::write(&path, text).unwrap();
            eprintln!("updated tests/snapshots/{file}");
            continue;
        }
        match committed {
            None => problems.push(format!("tests/snapshots/{file} is missing")),
            Some(old) => problems.push(format!(
                "`spinlift {}--help` differs from tests/snapshots/{file} \
                 (- snapshot, + binary):\n{}",
                if name == "spinlift" { String::new() } else { format!("{name} ") },
                diff(&old, text)
            )),
        }
    }
    // A snapshot of a command that is gone.
    for entry in std::fs::read_dir(SNAPSHOTS).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with("help-") && !expected_files.contains(&file) {
            if update {
                std::fs::remove_file(entry.path()).unwrap();
                eprintln!("removed tests/snapshots/{file}");
            } else {
                problems.push(format!("tests/snapshots/{file} names no command"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nIf the change is intended, refresh the snapshots with\n    {REFRESH}\nand commit them \
         (also keep the README's synopsis in step).",
        problems.join("\n\n")
    );
}
