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
    assert_eq!(commands, ["run", "scan", "demo", "status", "report", "emulator"]);

    for (command, text) in &synopsis {
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
