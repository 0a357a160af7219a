//! DynamoDB's error answers in the AWS JSON 1.0 protocol: the status, the
//! `application/x-amz-json-1.0` content type, an `x-amzn-RequestId`, and a body whose `__type`
//! names the error (`com.amazonaws.dynamodb.v20120810#ThrottlingException`). The AWS SDK takes
//! the code from `__type` after the `#` and the message from `message` (or `Message`).

use serde_json::{json, Value};

use crate::rule::Fault;

const DYNAMODB_NAMESPACE: &str = "com.amazonaws.dynamodb.v20120810#";

/// An error answer, ready to send.
#[derive(Debug)]
pub struct AwsError {
    pub status: u16,
    pub body: Value,
}

/// The answer `fault` gives to a request for `target` (`DynamoDB_20120810.TransactWriteItems`)
/// with this body; `None` for the faults that are not an answer (hang, drop, latency).
pub fn for_fault(
    fault: &Fault,
    target: &str,
    operation: &str,
    request: &str,
    key: Option<&str>,
) -> Option<AwsError> {
    // Secrets Manager (moto's other service here) names its errors without a namespace.
    let namespace = if target.starts_with("DynamoDB_") {
        DYNAMODB_NAMESPACE
    } else {
        ""
    };
    let plain = |status: u16, code: &str, message: &str| AwsError {
        status,
        body: json!({"__type": format!("{namespace}{code}"), "message": message}),
    };
    Some(match fault {
        Fault::TransactionConflict
            if operation == "TransactWriteItems" || operation == "TransactGetItems" =>
        {
            let codes = conflict_codes(request, key);
            let reasons: Vec<Value> = codes
                .iter()
                .map(|code| match *code {
                    "TransactionConflict" => {
                        json!({"Code": code, "Message": "Transaction is ongoing for the item"})
                    }
                    _ => json!({"Code": code}),
                })
                .collect();
            // This exception's message is `Message`, capitalised: the SDK's typed error reads
            // only that spelling for it.
            AwsError {
                status: 400,
                body: json!({
                    "__type": format!("{namespace}TransactionCanceledException"),
                    "Message": format!(
                        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                        codes.join(", ")
                    ),
                    "CancellationReasons": reasons,
                }),
            }
        }
        // A single-item write meeting an item a transaction holds.
        Fault::TransactionConflict => plain(
            400,
            "TransactionConflictException",
            "Transaction is ongoing for the item",
        ),
        Fault::Throttling => plain(
            400,
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        ),
        Fault::ProvisionedThroughputExceeded => plain(
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded.",
        ),
        Fault::InternalServerError => plain(500, "InternalServerError", "Internal server error"),
        Fault::Hang | Fault::DropConnection | Fault::AnswerLost | Fault::Latency(_) => return None,
    })
}

/// One code per `TransactItems` entry: `TransactionConflict` for the first entry containing
/// `key` (the first entry when none does or no key is given), `None` for the others.
fn conflict_codes(request: &str, key: Option<&str>) -> Vec<&'static str> {
    let items = serde_json::from_str::<Value>(request)
        .ok()
        .and_then(|body| body.get("TransactItems")?.as_array().cloned())
        .unwrap_or_default();
    if items.is_empty() {
        return vec!["TransactionConflict"];
    }
    let conflicted = key
        .and_then(|key| items.iter().position(|item| item.to_string().contains(key)))
        .unwrap_or(0);
    (0..items.len())
        .map(|i| {
            if i == conflicted {
                "TransactionConflict"
            } else {
                "None"
            }
        })
        .collect()
}

/// A request id shaped like DynamoDB's: 52 upper-case letters and digits.
pub fn request_id(mut seed: crate::rule::SplitMix64) -> String {
    const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..52)
        .map(|_| ALPHABET[(seed.next_u64() % 36) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflict_names_the_item_holding_the_key() {
        let request = r#"{"TransactItems":[
            {"Put":{"Item":{"pk":{"S":"USER#u1"}}}},
            {"Update":{"Key":{"pk":{"S":"CUS#cus_1"}}}},
            {"Put":{"Item":{"pk":{"S":"AUDIT#cus_1"}}}}]}"#;
        assert_eq!(
            conflict_codes(request, Some("CUS#cus_1")),
            ["None", "TransactionConflict", "None"]
        );
        assert_eq!(
            conflict_codes(request, None),
            ["TransactionConflict", "None", "None"]
        );
        let answer = for_fault(
            &Fault::TransactionConflict,
            "DynamoDB_20120810.TransactWriteItems",
            "TransactWriteItems",
            request,
            Some("CUS#cus_1"),
        )
        .unwrap();
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.body,
            json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict, None]",
                "CancellationReasons": [
                    {"Code": "None"},
                    {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
                    {"Code": "None"}
                ]
            })
        );
    }

    #[test]
    fn other_faults_answer_their_code_and_status() {
        let answer = |fault| {
            for_fault(&fault, "DynamoDB_20120810.PutItem", "PutItem", "{}", None).map(|a| {
                (
                    a.status,
                    a.body["__type"].as_str().unwrap_or("").to_string(),
                )
            })
        };
        let ns = DYNAMODB_NAMESPACE;
        assert_eq!(
            answer(Fault::InternalServerError),
            Some((500, format!("{ns}InternalServerError")))
        );
        assert_eq!(
            answer(Fault::TransactionConflict),
            Some((400, format!("{ns}TransactionConflictException")))
        );
        assert_eq!(
            answer(Fault::ProvisionedThroughputExceeded),
            Some((400, format!("{ns}ProvisionedThroughputExceededException")))
        );
        assert_eq!(answer(Fault::Hang), None);
        let secrets = for_fault(
            &Fault::Throttling,
            "secretsmanager.GetSecretValue",
            "GetSecretValue",
            "{}",
            None,
        )
        .unwrap();
        assert_eq!(secrets.body["__type"], "ThrottlingException");
    }

    #[test]
    fn request_ids_look_like_dynamodbs() {
        let id = request_id(crate::rule::SplitMix64(9));
        assert_eq!(id.len(), 52);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_ne!(id, request_id(crate::rule::SplitMix64(10)));
    }
}
