//! `hawser`: forward TCP ports over one encrypted hawser session whose
//! connections survive the loss of the link. See `hawser --help`; what the
//! command does is [`hawser_tunnel::command`].

fn main() -> std::process::ExitCode {
    hawser_tunnel::command::main(std::env::args_os())
}
