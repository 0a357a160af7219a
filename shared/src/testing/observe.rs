//! What a request wrote to the logs and as metrics, for tests to read: the production log
//! format ([`crate::telemetry::subscriber`]) into a buffer, and the EMF lines a
//! [`crate::metrics::Metrics`] captured.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Once};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

/// Log lines written on this thread while the capture lives, at debug level (the seeds' debug
/// mode: the most a deployment can log). Tests run on a current-thread runtime, so every task
/// of the test is on its thread.
///
/// One process-wide subscriber writes into the buffer of the thread's capture: a subscriber
/// per test thread (`set_default`) misses events whose callsite another thread registered at
/// the same moment.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(None) };
}

/// Writes into the current thread's capture, if it has one.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(buffer) = capture.borrow().as_ref() {
                buffer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = ThreadCapture;
    fn make_writer(&'a self) -> Self::Writer {
        ThreadCapture
    }
}

impl LogCapture {
    pub fn start() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let filter = crate::telemetry::filter(Some("debug"), None);
            // Threads without a capture (other tests) skip formatting altogether.
            let capturing = tracing_subscriber::filter::filter_fn(|_| {
                CAPTURE.with(|capture| capture.borrow().is_some())
            });
            let subscriber = tracing_subscriber::layer::SubscriberExt::with(
                crate::telemetry::subscriber(filter, ThreadCapture).finish(),
                capturing,
            );
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in a test process");
        });
        // A callsite another test's thread registered while the subscriber was being installed
        // may have cached "never"; this capture must see every callsite it reaches.
        tracing::callsite::rebuild_interest_cache();
        let buffer = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(buffer.clone()));
        LogCapture { buffer }
    }

    /// Every line so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self
            .buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
            .collect()
    }

    /// The raw text so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(|p| p.into_inner())).into()
    }

    /// The lines whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURE.with(|capture| *capture.borrow_mut() = None);
    }
}

/// Fails when `text` holds any of `secrets`, an email address, a JWT or a card number.
pub fn assert_no_personal_data(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "a secret reached the output: {secret}"
        );
    }
    for word in text.split(|c: char| c.is_whitespace() || "\"',;:()[]{}<>=\\".contains(c)) {
        if let Some((local, domain)) = word.split_once('@') {
            assert!(
                local.is_empty() || !domain.contains('.'),
                "an email address reached the output: {word}"
            );
        }
        // A JWT: three base64url parts, the first a JSON header (`eyJ`).
        assert!(
            !(word.starts_with("eyJ") && word.matches('.').count() == 2),
            "a token reached the output: {word}"
        );
    }
    if let Some(run) = card_number(text) {
        panic!("a card number reached the output: {run}");
    }
}

/// A Luhn-valid card number: 14 to 19 digits in a row, or four groups of four separated by
/// spaces or dashes. 13-digit runs are left out: millisecond timestamps are 13 digits; so are
/// the fractional digits of a decimal (`0.467048000000005`, a duration).
fn card_number(text: &str) -> Option<String> {
    let digits = |s: &str| s.chars().collect::<Vec<char>>();
    let bytes = text.as_bytes();
    let mut solid = None;
    let mut start = 0;
    for run in text.split(|c: char| !c.is_ascii_digit()) {
        let fraction = start >= 2 && bytes[start - 1] == b'.' && bytes[start - 2].is_ascii_digit();
        if !fraction && (14..=19).contains(&run.len()) && luhn(&digits(run)) {
            solid = Some(run);
            break;
        }
        // Every separator is one ASCII byte or a longer character; step over it either way.
        start += run.len();
        start += text[start..].chars().next().map_or(0, char::len_utf8);
    }
    if let Some(run) = solid {
        return Some(run.to_string());
    }
    text.split(|c: char| !(c.is_ascii_digit() || c == ' ' || c == '-'))
        .find_map(|chunk| {
            let words: Vec<&str> = chunk.split([' ', '-']).collect();
            words.windows(4).find_map(|group| {
                let joined = group.concat();
                (group.iter().all(|g| g.len() == 4) && luhn(&digits(&joined))).then_some(joined)
            })
        })
}

fn luhn(digits: &[char]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).unwrap_or(0);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The value of metric `name` in captured EMF `lines`, in the line whose dimensions are
/// exactly `dimensions` (besides `Function`); `None` when no such line was written.
pub fn metric(lines: &[Value], name: &str, dimensions: &[(&str, &str)]) -> Option<Value> {
    lines
        .iter()
        .find(|line| {
            let declared = &line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0];
            let Some(declared) = declared.as_array() else {
                return false;
            };
            let names: Vec<&str> = declared.iter().filter_map(Value::as_str).collect();
            let wanted: Vec<&str> = std::iter::once("Function")
                .chain(dimensions.iter().map(|(k, _)| *k))
                .collect();
            let mut a = names.clone();
            let mut b = wanted;
            a.sort();
            b.sort();
            a == b && dimensions.iter().all(|(k, v)| line[*k] == *v) && line.get(name).is_some()
        })
        .map(|line| line[name].clone())
}

/// Fails when a metric line holds any of `identities`, an email, a token or a card number, or
/// a dimension holds what looks like an id (a customer id, an address, a long value).
pub fn assert_metrics_carry_no_identity(lines: &[Value], identities: &[&str]) {
    let text = serde_json::to_string(lines).unwrap_or_default();
    assert_no_personal_data(&text, identities);
    for line in lines {
        let declared = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for dimension in declared.iter().filter_map(Value::as_str) {
            let value = line[dimension].as_str().unwrap_or_default();
            assert!(
                !value.starts_with("cus_") && !value.contains('@') && value.len() <= 64,
                "dimension {dimension} holds {value}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::card_number;

    #[test]
    fn card_numbers_are_found_in_a_row_or_in_groups_and_timestamps_are_not() {
        assert!(card_number(r#"{"number":"4242424242424242"}"#).is_some());
        assert!(card_number("card 4242 4242 4242 4242 used").is_some());
        assert!(card_number("card 4000-0566-5566-5556 used").is_some());
        assert!(
            card_number(r#"{"Timestamp":1796166032879,"at":"2026-12-01T23:10:11Z"}"#).is_none()
        );
        assert!(card_number("4242424242424241").is_none(), "not Luhn-valid");
        assert!(
            card_number(r#"{"SyncDuration":0.467048000000005}"#).is_none(),
            "a decimal's fraction"
        );
        assert!(card_number("card 467048000000005 used").is_some());
    }
}
