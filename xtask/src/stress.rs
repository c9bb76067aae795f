//! `cargo xtask stress`: builds the runner and the workers, then runs `lockspec-stress`.

/// Builds `lockspec-stress` and the Rust workers (and installs the Python and Node peers that
/// `--impl` names), then runs `lockspec-stress` with `args`; its exit status is kept.
pub fn run(args: &[String]) -> Result<(), String> {
    // `--impl a+b` gives the worker slots different implementations.
    let mut named = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let value = match arg.strip_prefix("--impl=") {
            Some(value) => Some(value.to_owned()),
            None if arg == "--impl" => iter.next().cloned(),
            None => None,
        };
        if let Some(value) = value {
            named.push("--impl".to_owned());
            named.push(value.replace('+', ","));
        }
    }
    let peers = crate::peers::named_in(&named);
    if !peers.is_empty() {
        crate::peers::install(Some(&peers));
    }
    let exe = crate::build_conformance_bin("lockspec-stress")?;
    let status = crate::run_built(&exe, args)?;
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => Err("the stress run found a violation".into()),
        Some(3) => {
            Err("the stress run could not judge the implementation (verdict unknown)".into())
        }
        _ => Err(format!("the stress run failed ({status})")),
    }
}
