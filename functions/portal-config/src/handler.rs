use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::http::{self, ApiError, ErrorCode, HandlerResult, PathParams, Router};
use shared::ids::ConfigurationId;
use shared::portal::{Workflow, WorkflowSettings};
use shared::portal_admin::{self as admin, AdminContext, ConfigurationSpec};
use shared::services::Services;

#[derive(Debug, Clone, Copy)]
enum Route {
    ListConfigurations,
    CreateConfiguration,
    GetConfiguration,
    UpdateConfiguration,
    ListWorkflows,
    PutWorkflow,
}

const ROUTES: Router<Route> = Router::new(&[
    (
        Method::GET,
        "/portal/configurations",
        Route::ListConfigurations,
    ),
    (
        Method::POST,
        "/portal/configurations",
        Route::CreateConfiguration,
    ),
    (
        Method::GET,
        "/portal/configurations/{id}",
        Route::GetConfiguration,
    ),
    (
        Method::POST,
        "/portal/configurations/{id}",
        Route::UpdateConfiguration,
    ),
    (Method::GET, "/portal/workflows", Route::ListWorkflows),
    (
        Method::PUT,
        "/portal/workflows/{workflow}",
        Route::PutWorkflow,
    ),
]);

pub async fn handle(services: &Services, request: Request) -> Result<Response<Body>, Error> {
    Ok(http::serve(services, &request, dispatch(services, &request)).await)
}

fn configuration_id(params: &PathParams) -> Result<ConfigurationId, ApiError> {
    let raw = params.get("id").unwrap_or_default();
    ConfigurationId::parse(raw).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ConfigurationNotFound,
            format!("no portal configuration {raw}"),
        )
    })
}

fn workflow(params: &PathParams) -> Result<Workflow, ApiError> {
    let raw = params.get("workflow").unwrap_or_default();
    Workflow::parse(raw).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownWorkflow,
            format!(
                "no workflow {raw}; the workflows are {}",
                Workflow::ALL.map(Workflow::as_str).join(", ")
            ),
        )
    })
}

async fn dispatch(services: &Services, request: &Request) -> HandlerResult {
    let (route, params) = ROUTES.route(request)?;
    let user = services.auth.authenticate_request(request).await?;
    user.require_admin()?;
    let ctx = AdminContext {
        table: &services.table,
        stripe: &services.stripe,
        clock: &services.clock,
        default_configuration: services.config.portal.default_configuration.as_deref(),
    };
    let max_body = services.config.max_body_bytes;
    match route {
        Route::ListConfigurations => {
            let configurations = admin::list_configurations(ctx).await?;
            Ok(http::json(
                StatusCode::OK,
                json!({ "configurations": configurations }),
            ))
        }
        Route::GetConfiguration => {
            let configuration = admin::get_configuration(ctx, &configuration_id(&params)?).await?;
            Ok(http::json(
                StatusCode::OK,
                json!({ "configuration": configuration }),
            ))
        }
        Route::CreateConfiguration => {
            let key = http::idempotency_key(request)?;
            let spec: ConfigurationSpec = http::parse_json(request, max_body)?;
            let configuration = admin::create_configuration(ctx, &spec, &user.id, key).await?;
            tracing::info!(admin = %user.id, configuration = %configuration.configuration.id, "portal configuration created");
            Ok(http::json(
                StatusCode::CREATED,
                json!({ "configuration": configuration }),
            ))
        }
        Route::UpdateConfiguration => {
            let id = configuration_id(&params)?;
            let spec: ConfigurationSpec = http::parse_json(request, max_body)?;
            let configuration = admin::update_configuration(ctx, &id, &spec).await?;
            tracing::info!(admin = %user.id, configuration = %id, "portal configuration updated");
            Ok(http::json(
                StatusCode::OK,
                json!({ "configuration": configuration }),
            ))
        }
        Route::ListWorkflows => {
            let workflows = admin::list_workflows(ctx).await?;
            Ok(http::json(
                StatusCode::OK,
                json!({ "workflows": workflows }),
            ))
        }
        Route::PutWorkflow => {
            let workflow = workflow(&params)?;
            let settings: WorkflowSettings = http::parse_json(request, max_body)?;
            let put = admin::put_workflow(ctx, workflow, settings).await?;
            if put.changed {
                tracing::info!(admin = %user.id, workflow = workflow.as_str(), "workflow mapping saved");
            }
            Ok(http::json(
                StatusCode::OK,
                json!({ "workflow": put.workflow, "changed": put.changed }),
            ))
        }
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
