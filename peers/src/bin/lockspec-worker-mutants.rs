//! Deliberately broken locks, each correct but for one bug: the suite's test of itself.
//!
//! `lockspec-worker-mutants --mutant NAME` serves the worker protocol with the mutant `NAME` of
//! `lockspec_peers::mutants::CATALOGUE` as implementation `mutant-NAME`; `--unbroken` serves the
//! model lock the newer mutants are built on, without a flaw. The conformance suite must fail
//! every mutant, at a step of the rule its bug breaks, and pass the unbroken model.

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    use lockspec_peers::mutants;
    // The idle child of `spawn_child` gets `--idle-child` alone, without `--mutant`.
    lockspec_worker::idle_child_if_requested();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    match mutants::from_args(&args) {
        Ok(served) => lockspec_worker::serve(mutants::Mutants(served)),
        Err(message) => {
            eprintln!("lockspec-worker-mutants: {message}");
            eprintln!("{}", mutants::usage());
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("lockspec-worker-mutants: mutants need unix");
    std::process::ExitCode::from(2)
}
