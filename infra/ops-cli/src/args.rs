//! The command line, parsed into typed commands (no parser crate: a handful of flags).

use shared::adopt::{ImportOptions, Mapping};
use shared::ids::UserId;
use shared::reconcile::ReconcileOptions;
use shared::support::EraseOptions;
use shared::webhook::replay::Selection;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const USAGE: &str = "usage:
  portico-ops import [--metadata-key <key>] [--mapping <file.csv|file.json>] [--created-since <time>]
  portico-ops replay (--since <time> [--type <event type>]... | --event evt_... | --failed)
  portico-ops reconcile [--stale-hours <hours, default 24>] [--batch <customers, default 500>]
  portico-ops erase --user <sub> --operator <your name> [--stripe]
common options: --rate <Stripe requests per second, default 10>  --json
<time> is RFC 3339 (2026-11-30T00:00:00Z) or epoch seconds";

/// Well under Stripe's limits (about 100 requests a second live, 25 in test mode), leaving
/// the rest to the webhook and the users.
const DEFAULT_RATE: f64 = 10.0;

#[derive(Debug, Clone)]
pub struct Common {
    pub rate: f64,
    pub json: bool,
}

#[derive(Debug, Clone)]
pub enum Command {
    Import {
        common: Common,
        options: ImportOptions,
    },
    Replay {
        common: Common,
        selection: Selection,
    },
    Reconcile {
        common: Common,
        options: ReconcileOptions,
    },
    /// Erases one user (and with `--stripe` their Stripe customer), as `DELETE /admin/users/{sub}`
    /// does, without the API's 29 s limit.
    Erase {
        common: Common,
        user: UserId,
        options: EraseOptions,
        /// Who runs it, for the tombstone (`cli:<operator>`).
        operator: String,
    },
}

impl Command {
    pub fn common(&self) -> &Common {
        match self {
            Command::Import { common, .. }
            | Command::Replay { common, .. }
            | Command::Reconcile { common, .. }
            | Command::Erase { common, .. } => common,
        }
    }
}

/// Flags and their values, in order; `--json` and `--failed` take none.
struct Flags(Vec<(String, Option<String>)>);

const SWITCHES: &[&str] = &["--json", "--failed", "--stripe"];

impl Flags {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut flags = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if !arg.starts_with("--") {
                return Err(format!("unexpected argument `{arg}`"));
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let value = if SWITCHES.contains(&name.as_str()) {
                None
            } else {
                Some(match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or(format!("{name} needs a value"))?,
                })
            };
            flags.push((name, value));
        }
        Ok(Flags(flags))
    }

    /// Takes every value of `name`.
    fn all(&mut self, name: &str) -> Vec<String> {
        let (taken, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.0 = rest;
        taken.into_iter().filter_map(|(_, v)| v).collect()
    }

    fn one(&mut self, name: &str) -> Result<Option<String>, String> {
        let mut values = self.all(name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(format!("{name} given twice")),
        }
    }

    fn switch(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| n != name);
        self.0.len() != before
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        self.one(name)?
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{name}: `{v}` is not a number"))
            })
            .transpose()
    }

    /// Fails on any flag nobody took.
    fn done(self) -> Result<(), String> {
        match self.0.first() {
            Some((name, _)) => Err(format!("unknown option {name}")),
            None => Ok(()),
        }
    }
}

/// RFC 3339 or epoch seconds.
pub fn parse_time(value: &str) -> Result<i64, String> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Ok(seconds);
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| format!("`{value}` is neither RFC 3339 nor epoch seconds"))
}

pub fn parse(args: Vec<String>) -> Result<Command, String> {
    let (sub, rest) = args.split_first().ok_or("no subcommand")?;
    let mut flags = Flags::parse(rest)?;
    let common = Common {
        rate: flags.number("--rate")?.unwrap_or(DEFAULT_RATE),
        json: flags.switch("--json"),
    };
    let command = match sub.as_str() {
        "import" => {
            let mut options = ImportOptions::default();
            if let Some(key) = flags.one("--metadata-key")? {
                if key.is_empty() {
                    return Err("--metadata-key must not be empty".into());
                }
                options.metadata_key = key;
            }
            if let Some(path) = flags.one("--mapping")? {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
                options.mapping = Mapping::parse(&text).map_err(|e| format!("{path}: {e}"))?;
            }
            options.created_since = flags
                .one("--created-since")?
                .map(|t| parse_time(&t))
                .transpose()?;
            Command::Import { common, options }
        }
        "replay" => {
            let since = flags.one("--since")?;
            let event = flags.one("--event")?;
            let failed = flags.switch("--failed");
            let types = flags.all("--type");
            let selection =
                match (since, event, failed) {
                    (Some(since), None, false) => Selection::Since {
                        since: parse_time(&since)?,
                        types,
                    },
                    (None, Some(event), false) if types.is_empty() => Selection::Event(event),
                    (None, None, true) if types.is_empty() => Selection::Failed,
                    _ => return Err(
                        "replay takes exactly one of --since (with any --type), --event, --failed"
                            .into(),
                    ),
                };
            Command::Replay { common, selection }
        }
        "reconcile" => {
            let stale = flags.one("--stale-hours")?;
            let batch = flags.one("--batch")?;
            let options = ReconcileOptions::from_lookup(|name| match name {
                "RECONCILE_STALE_HOURS" => stale.clone(),
                "RECONCILE_BATCH" => batch.clone(),
                _ => None,
            })
            .map_err(|e| {
                e.replace("RECONCILE_STALE_HOURS", "--stale-hours")
                    .replace("RECONCILE_BATCH", "--batch")
            })?;
            Command::Reconcile { common, options }
        }
        "erase" => {
            let user = flags.one("--user")?.ok_or("erase needs --user <sub>")?;
            let user = UserId::parse(user).map_err(|e| format!("--user: {e}"))?;
            let operator = flags
                .one("--operator")?
                .filter(|o| !o.trim().is_empty())
                .ok_or("erase needs --operator <your name>, for the tombstone")?;
            let options = EraseOptions {
                stripe: flags.switch("--stripe"),
            };
            Command::Erase {
                common,
                user,
                options,
                operator,
            }
        }
        other => return Err(format!("unknown subcommand `{other}`")),
    };
    flags.done()?;
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn erase_needs_a_user_and_an_operator() {
        let Ok(Command::Erase {
            user,
            options,
            operator,
            ..
        }) = parse(args("erase --user auth0|42 --operator dana --stripe"))
        else {
            panic!("not an erase")
        };
        assert_eq!(
            (user.as_str(), options.stripe, operator.as_str()),
            ("auth0|42", true, "dana")
        );
        assert!(parse(args("erase --operator dana")).is_err());
        assert!(parse(args("erase --user auth0|42")).is_err());
        assert!(parse(args("erase --user auth0|42 --operator dana --force")).is_err());
    }

    #[test]
    fn replay_takes_exactly_one_selection() {
        let Ok(Command::Replay { selection, common }) = parse(args(
            "replay --since 2026-11-30T00:00:00Z --type invoice.paid --json",
        )) else {
            panic!("not a replay")
        };
        assert_eq!(
            selection,
            Selection::Since {
                since: 1_795_996_800,
                types: vec!["invoice.paid".into()]
            }
        );
        assert!(common.json);
        assert_eq!(common.rate, DEFAULT_RATE);
        assert!(parse(args("replay --failed --event evt_1")).is_err());
        assert!(parse(args("replay")).is_err());
        assert!(parse(args("replay --failed --bogus 1")).is_err());
        assert!(parse(args("replay --since yesterday")).is_err());
        assert!(parse(args("replay --event evt_1 --rate=fast")).is_err());
    }

    #[test]
    fn import_reads_its_options_and_refuses_a_bad_mapping_file() {
        let dir = std::env::temp_dir().join(format!("portico-ops-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("map.csv");
        std::fs::write(&good, "user_id,customer_id\nu-1,cus_A\n").unwrap();
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "u-1,cus_A\nu-2,oops\n").unwrap();
        let line = format!(
            "import --metadata-key legacy_uid --mapping {} --created-since 0 --rate 2.5",
            good.display()
        );
        let Ok(Command::Import { options, common }) = parse(args(&line)) else {
            panic!("not an import")
        };
        assert_eq!(options.metadata_key, "legacy_uid");
        assert_eq!(options.created_since, Some(0));
        assert_eq!(common.rate, 2.5);
        assert!(parse(args(&format!("import --mapping {}", bad.display()))).is_err());
        assert!(parse(args("import --mapping /nonexistent/map.csv")).is_err());
        assert!(parse(args("import --metadata-key=")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
