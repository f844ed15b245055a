//! `rbdkit completions SHELL` and `rbdkit man [COMMAND]`: shell completion scripts and roff
//! manual pages, generated from the same clap definitions that parse the command line, so they
//! never drift from it. Both print to stdout and need no cluster; packagers run them at build
//! time (`rbdkit man > rbdkit.1`), operators once (`rbdkit completions bash > ...`).
use clap::Args;
use std::process::ExitCode;

/// Arguments of `rbdkit completions`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `rbdkit man`.
#[derive(Args)]
pub struct ManArgs {
    /// The page of one subcommand (`rbdkit-import-raw(1)`) instead of rbdkit(1).
    pub command: Option<String>,
}

/// Prints the completion script.
pub fn completions(a: CompletionsArgs) -> rbdkit::Result<ExitCode> {
    let mut cmd = crate::cli_command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "rbdkit", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}

/// Prints the manual page.
pub fn man(a: ManArgs) -> rbdkit::Result<ExitCode> {
    let mut cmd = crate::cli_command().disable_help_subcommand(true);
    // Built first so the global options reach each subcommand's page, as they reach its --help.
    cmd.build();
    let page = match &a.command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) if !sub.is_hide_set() => sub
                .clone()
                .display_name(format!("rbdkit-{name}"))
                .bin_name(format!("rbdkit {name}")),
            _ => {
                let names: Vec<&str> = cmd
                    .get_subcommands()
                    .filter(|s| !s.is_hide_set())
                    .map(|s| s.get_name())
                    .collect();
                return Err(rbdkit::Error::InvalidInput(format!(
                    "man: no command '{}': use one of {}",
                    name.escape_debug(),
                    names.join(", ")
                )));
            }
        },
    };
    let mut roff = Vec::new();
    // The page names rbdkit's version, not the run-time libraries `--version` adds to it.
    clap_mangen::Man::new(page)
        .source(concat!("rbdkit ", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)
        .map_err(|e| rbdkit::Error::io("render the manual page", e))?;
    out!("{}", String::from_utf8_lossy(&roff));
    Ok(ExitCode::SUCCESS)
}
