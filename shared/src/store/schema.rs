//! The table's key schema, index and TTL, as local stacks and tests create it. template.yaml
//! declares the same for the cloud.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::StoreError;

/// The index that lists items by day (portal sessions, for analytics).
pub const GSI1: &str = "gsi1";
/// Epoch seconds after which DynamoDB deletes the item (webhook ledger entries, checkout records,
/// portal sessions, audit entries).
pub const TTL_ATTRIBUTE: &str = "expires_at";

fn key_element(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| StoreError::Request(e.to_string()))
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| StoreError::Request(e.to_string()))
}

/// Creates the table with its index and TTL; an existing table is left as it is.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let index = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key_element("gsi1pk", KeyType::Hash)?)
        .key_schema(key_element("gsi1sk", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| StoreError::Request(e.to_string()))?;
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("sk")?)
        .attribute_definitions(string_attribute("gsi1pk")?)
        .attribute_definitions(string_attribute("gsi1sk")?)
        .key_schema(key_element("pk", KeyType::Hash)?)
        .key_schema(key_element("sk", KeyType::Range)?)
        .global_secondary_indexes(index)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(StoreError::from_sdk(e)),
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(|e| StoreError::Request(e.to_string()))?,
        )
        .send()
        .await
        .map_err(StoreError::from_sdk)?;
    Ok(())
}
