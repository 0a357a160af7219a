//! The few fields of an event Portico reads, whatever the API version of the payload.

use serde::Deserialize;
use serde_json::Value;

use crate::ids::CustomerId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub livemode: bool,
    pub object_id: Option<String>,
    /// The customer the event is about, when it is about one.
    pub customer: Option<CustomerId>,
    /// Checkout's `client_reference_id`: the Portico user who started the checkout.
    pub client_reference_id: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
    #[serde(default)]
    object: Option<String>,
    data: Option<RawData>,
}

#[derive(Deserialize)]
struct RawData {
    object: Value,
}

pub fn parse_envelope(body: &[u8]) -> Result<Envelope, super::WebhookError> {
    let raw: Raw =
        serde_json::from_slice(body).map_err(|e| super::WebhookError::Malformed(e.to_string()))?;
    envelope_of(raw)
}

/// The envelope of an event read from the Events API, as its delivery would have carried it.
pub fn event_envelope(event: &crate::stripe::Event) -> Result<Envelope, super::WebhookError> {
    envelope_of(Raw {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        created: event.created.unwrap_or_default(),
        livemode: event.livemode,
        object: Some("event".into()),
        data: Some(RawData {
            object: event.data.object.clone(),
        }),
    })
}

fn envelope_of(raw: Raw) -> Result<Envelope, super::WebhookError> {
    if raw.object.as_deref().is_some_and(|o| o != "event") || !raw.id.starts_with("evt_") {
        return Err(super::WebhookError::Malformed("not an event object".into()));
    }
    let object = raw.data.map(|d| d.object).unwrap_or(Value::Null);
    let object_id = object.get("id").and_then(Value::as_str).map(str::to_string);
    let customer = match object.get("object").and_then(Value::as_str) {
        Some("customer") => object_id.clone(),
        _ => match object.get("customer") {
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Object(expanded)) => expanded
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        },
    }
    .and_then(|id| CustomerId::parse(id).ok());
    Ok(Envelope {
        id: raw.id,
        event_type: raw.event_type,
        created: raw.created,
        livemode: raw.livemode,
        object_id,
        customer,
        client_reference_id: object
            .get("client_reference_id")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_customer_wherever_the_object_keeps_it() {
        let customer = br#"{"id":"evt_1","object":"event","type":"customer.updated","created":1,"livemode":false,
            "data":{"object":{"id":"cus_A","object":"customer"}}}"#;
        assert_eq!(
            parse_envelope(customer).unwrap().customer.unwrap().as_str(),
            "cus_A"
        );
        let subscription = br#"{"id":"evt_2","object":"event","type":"customer.subscription.updated","created":1,
            "data":{"object":{"id":"sub_1","object":"subscription","customer":"cus_B","unknown_future_field":{"x":1}}}}"#;
        let e = parse_envelope(subscription).unwrap();
        assert_eq!(
            (e.customer.unwrap().as_str(), e.object_id.as_deref()),
            ("cus_B", Some("sub_1"))
        );
        let expanded = br#"{"id":"evt_3","object":"event","type":"invoice.paid","created":1,
            "data":{"object":{"id":"in_1","customer":{"id":"cus_C"}}}}"#;
        assert_eq!(
            parse_envelope(expanded).unwrap().customer.unwrap().as_str(),
            "cus_C"
        );
        let config = br#"{"id":"evt_4","object":"event","type":"billing_portal.configuration.updated","created":1,
            "data":{"object":{"id":"bpc_1","object":"billing_portal.configuration"}}}"#;
        assert!(parse_envelope(config).unwrap().customer.is_none());
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        assert!(parse_envelope(b"{}").is_err());
        assert!(parse_envelope(b"not json").is_err());
        assert!(
            parse_envelope(br#"{"id":"cus_1","object":"customer","type":"x","created":1}"#)
                .is_err()
        );
    }
}
