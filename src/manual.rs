//! Shell completions and the manual page, generated from the command
//! line's own definition so they never fall behind it.

use clap::CommandFactory;
use clap_mangen::Man;

use crate::cli::Cli;

pub fn print_completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "toxtun", &mut std::io::stdout());
}

type Section = fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// One roff page holding every command with its options, as `man toxtun`
/// readers expect everything in one place: each command is a section of
/// its own, its synopsis and options below it as paragraphs.
pub fn render_man_page() -> Result<String, String> {
    let command = Cli::command();
    let man = Man::new(command.clone());
    let mut page = render(
        &man,
        &[
            Man::render_title,
            Man::render_name_section,
            Man::render_synopsis_section,
            Man::render_description_section,
            Man::render_options_section,
        ],
    )?;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let full_name = format!("toxtun {}", sub.get_name());
        page.push_str(&format!(".SH \"{}\"\n", full_name.to_uppercase()));
        let sub_man = Man::new(sub.clone().bin_name(full_name.clone()));
        let sections = render(
            &sub_man,
            &[
                Man::render_description_section,
                Man::render_synopsis_section,
                Man::render_options_section,
            ],
        )?;
        for line in sections.lines() {
            // Its headings become paragraph breaks under the command's.
            page.push_str(if line.starts_with(".SH ") {
                ".PP"
            } else {
                line
            });
            page.push('\n');
        }
    }
    page.push_str(&render(&man, &[Man::render_version_section])?);
    Ok(page)
}

fn render(man: &Man, sections: &[Section]) -> Result<String, String> {
    let mut out = Vec::new();
    for section in sections {
        section(man, &mut out).map_err(|e| format!("cannot render the manual page: {e}"))?;
    }
    String::from_utf8(out).map_err(|e| format!("the manual page is not UTF-8: {e}"))
}
