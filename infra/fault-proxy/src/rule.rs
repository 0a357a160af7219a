//! What to inject: rules matched against each request, in order of insertion.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault and the requests it applies to, as `POST /_faults` takes it:
/// `{"operation":"TransactWriteItems","key_contains":"CUS#cus_1","fault":"transaction_conflict","times":1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The operation, the part of `X-Amz-Target` after the `.` (`TransactWriteItems`); any when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// A substring of the request body (`CUS#cus_123`); any body when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_contains: Option<String>,
    pub fault: Fault,
    /// Applies to the next N matching requests it fires on; unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Fires on this fraction of matching requests (a seeded generator decides, so a run is
    /// reproducible); every match when unset. A match it does not fire on goes on to the next rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

/// The faults, each as DynamoDB (or the network) shows it to the AWS SDK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// 400 `TransactionCanceledException` with one cancellation reason per `TransactItems` entry:
    /// `TransactionConflict` for the first entry containing `key_contains` (else the first entry),
    /// `None` for the others. On a single-item operation, 400 `TransactionConflictException`.
    TransactionConflict,
    /// 400 `ThrottlingException`.
    Throttling,
    /// 400 `ProvisionedThroughputExceededException`.
    ProvisionedThroughputExceeded,
    /// 500 `InternalServerError`.
    InternalServerError,
    /// Never answers; ends when the client gives up and closes the connection.
    Hang,
    /// Closes the connection without an answer.
    DropConnection,
    /// Forwards the request, then closes the connection without DynamoDB's answer: the write
    /// happened and the client cannot know it (a timeout after the service acted), so the SDK
    /// sends it again.
    AnswerLost,
    /// Forwards the request after this delay: `{"latency_ms": 200}`.
    #[serde(rename = "latency_ms")]
    Latency(#[serde(with = "millis")] Duration),
}

impl Fault {
    /// The name `injected()` counts this fault under (its JSON name).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::TransactionConflict => "transaction_conflict",
            Fault::Throttling => "throttling",
            Fault::ProvisionedThroughputExceeded => "provisioned_throughput_exceeded",
            Fault::InternalServerError => "internal_server_error",
            Fault::Hang => "hang",
            Fault::DropConnection => "drop_connection",
            Fault::AnswerLost => "answer_lost",
            Fault::Latency(_) => "latency",
        }
    }
}

impl Rule {
    /// `fault` on every request; narrow it with the other builders.
    pub fn new(fault: Fault) -> Rule {
        Rule {
            operation: None,
            key_contains: None,
            fault,
            times: None,
            probability: None,
        }
    }

    pub fn operation(mut self, operation: impl Into<String>) -> Rule {
        self.operation = Some(operation.into());
        self
    }

    pub fn key_contains(mut self, key: impl Into<String>) -> Rule {
        self.key_contains = Some(key.into());
        self
    }

    pub fn times(mut self, times: u32) -> Rule {
        self.times = Some(times);
        self
    }

    pub fn probability(mut self, probability: f64) -> Rule {
        self.probability = Some(probability);
        self
    }

    /// Why this rule cannot be used, if it cannot.
    pub fn invalid(&self) -> Option<&'static str> {
        if self.times == Some(0) {
            return Some("times must be at least 1 (leave it out for unlimited)");
        }
        if self
            .probability
            .is_some_and(|p| !(p.is_finite() && (0.0..=1.0).contains(&p)))
        {
            return Some("probability must be between 0 and 1");
        }
        None
    }

    fn matches(&self, operation: &str, body: &str) -> bool {
        self.operation.as_deref().is_none_or(|o| o == operation)
            && self
                .key_contains
                .as_deref()
                .is_none_or(|k| body.contains(k))
    }
}

/// The active rules and the generator their probabilities draw from.
pub(crate) struct Rules {
    list: Vec<Rule>,
    random: SplitMix64,
}

impl Rules {
    pub fn new(seed: u64) -> Rules {
        Rules {
            list: Vec::new(),
            random: SplitMix64(seed),
        }
    }

    pub fn push(&mut self, rule: Rule) {
        if rule.invalid().is_none() {
            self.list.push(rule);
        }
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    pub fn reseed(&mut self, seed: u64) {
        self.random = SplitMix64(seed);
    }

    pub fn list(&self) -> &[Rule] {
        &self.list
    }

    /// The first rule that fires on this request, with one of its uses taken.
    pub fn fire(&mut self, operation: &str, body: &str) -> Option<Rule> {
        let random = &mut self.random;
        let position = self.list.iter().position(|rule| {
            rule.matches(operation, body) && rule.probability.is_none_or(|p| random.next_unit() < p)
        })?;
        let fired = self.list[position].clone();
        if let Some(times) = &mut self.list[position].times {
            *times -= 1;
            if *times == 0 {
                self.list.remove(position);
            }
        }
        Some(fired)
    }
}

/// Vigna's SplitMix64: tiny, seedable, and good enough to pick which requests fail.
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_and_write_the_control_endpoints_json() {
        let rule: Rule = serde_json::from_str(
            r#"{"operation":"TransactWriteItems","fault":"transaction_conflict","times":1}"#,
        )
        .unwrap();
        assert_eq!(
            rule,
            Rule::new(Fault::TransactionConflict)
                .operation("TransactWriteItems")
                .times(1)
        );
        let rule: Rule = serde_json::from_str(r#"{"fault":{"latency_ms":200}}"#).unwrap();
        assert_eq!(rule.fault, Fault::Latency(Duration::from_millis(200)));
        assert_eq!(
            serde_json::to_value(&rule).unwrap(),
            serde_json::json!({"fault": {"latency_ms": 200}})
        );
        assert!(serde_json::from_str::<Rule>(r#"{"fault":"hang","time":1}"#).is_err());
        assert!(serde_json::from_str::<Rule>(r#"{"fault":"slow"}"#).is_err());
    }

    #[test]
    fn rules_fire_in_order_and_use_up_their_times() {
        let mut rules = Rules::new(1);
        rules.push(
            Rule::new(Fault::Throttling)
                .operation("GetItem")
                .key_contains("CUS#a")
                .times(2),
        );
        rules.push(Rule::new(Fault::InternalServerError).times(1));
        let fired = |rules: &mut Rules, op, body| rules.fire(op, body).map(|r| r.fault);
        assert_eq!(
            fired(&mut rules, "GetItem", r#"{"pk":"CUS#a"}"#),
            Some(Fault::Throttling)
        );
        // The first rule does not match: the second fires, once.
        assert_eq!(
            fired(&mut rules, "PutItem", r#"{"pk":"CUS#a"}"#),
            Some(Fault::InternalServerError)
        );
        assert_eq!(fired(&mut rules, "PutItem", r#"{"pk":"CUS#a"}"#), None);
        assert_eq!(fired(&mut rules, "GetItem", r#"{"pk":"CUS#b"}"#), None);
        assert_eq!(
            fired(&mut rules, "GetItem", r#"{"pk":"CUS#a"}"#),
            Some(Fault::Throttling)
        );
        assert_eq!(fired(&mut rules, "GetItem", r#"{"pk":"CUS#a"}"#), None);
        assert!(rules.list().is_empty());
    }

    #[test]
    fn probability_is_a_reproducible_fraction() {
        let pattern = |seed| {
            let mut rules = Rules::new(seed);
            rules.push(Rule::new(Fault::Throttling).probability(0.1));
            (0..2_000)
                .map(|_| rules.fire("GetItem", "{}").is_some())
                .collect::<Vec<_>>()
        };
        let first = pattern(7);
        assert_eq!(first, pattern(7), "the same seed fails the same requests");
        assert_ne!(first, pattern(8));
        let fired = first.iter().filter(|f| **f).count();
        assert!((150..=250).contains(&fired), "{fired} of 2000 at 10%");
    }

    #[test]
    fn a_rule_that_does_not_fire_passes_the_request_on() {
        let mut rules = Rules::new(3);
        rules.push(Rule::new(Fault::Throttling).probability(0.0));
        rules.push(Rule::new(Fault::Hang).times(1));
        assert_eq!(
            rules.fire("GetItem", "{}").map(|r| r.fault),
            Some(Fault::Hang)
        );
    }

    #[test]
    fn unusable_rules_are_named_and_never_stored() {
        assert!(Rule::new(Fault::Hang).times(0).invalid().is_some());
        assert!(Rule::new(Fault::Hang).probability(1.5).invalid().is_some());
        assert!(Rule::new(Fault::Hang)
            .probability(f64::NAN)
            .invalid()
            .is_some());
        assert!(Rule::new(Fault::Hang).probability(1.0).invalid().is_none());
        let mut rules = Rules::new(0);
        rules.push(Rule::new(Fault::Hang).times(0));
        assert!(rules.list().is_empty());
    }
}
