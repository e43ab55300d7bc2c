# HTTP API (payload 2.0) in front of api_handler. api_handler answers 404 and
# 405 itself, so the $default route also goes to it: clients get the same JSON
# errors for every path.

resource "aws_apigatewayv2_api" "orders" {
  name          = "${local.stack}-orders-api"
  description   = "DOFS order API: POST /orders, GET /orders/{order_id}."
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "api_handler" {
  api_id                 = aws_apigatewayv2_api.orders.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = module.functions["api_handler"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = min(30000, var.function_timeouts["api_handler"] * 1000 + 500)
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  count = var.jwt_authorizer == null ? 0 : 1

  api_id           = aws_apigatewayv2_api.orders.id
  name             = "${local.stack}-jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_authorizer.issuer
    audience = var.jwt_authorizer.audience
  }
}

locals {
  api_routes = ["POST /orders", "GET /orders/{order_id}", "$default"]
}

resource "aws_apigatewayv2_route" "orders" {
  #checkov:skip=CKV_AWS_309:Every route uses the JWT authorizer whenever jwt_authorizer is set, and variables.tf refuses a stack without one outside dev; only a dev stack may be public (throttled per route, validated, access-logged).
  for_each = toset(local.api_routes)

  api_id             = aws_apigatewayv2_api.orders.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.api_handler.id}"
  authorization_type = var.jwt_authorizer == null ? "NONE" : "JWT"
  authorizer_id      = var.jwt_authorizer == null ? null : aws_apigatewayv2_authorizer.jwt[0].id
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (30 days by default to bound cost; set 365 or more where regulation asks); DOFS keeps its durable record of every order in DynamoDB, not in logs.
  # Under /aws/vendedlogs/ the log delivery's resource policy does not grow
  # with each group (CloudWatch Logs allows 5,120 characters per region).
  name              = "/aws/vendedlogs/apigateway/${local.stack}-orders-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.stack.arn
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.orders.id
  name        = "$default"
  auto_deploy = true

  # The stage-wide limits apply to a route without an entry of its own;
  # per-route limits keep an abuser of POST /orders (each one a Standard
  # workflow execution) from starving reads. Detailed (per-route, billed)
  # metrics stay off: the alarms and the dashboard use ApiId only.
  default_route_settings {
    throttling_rate_limit    = var.api_throttling_rate_limit
    throttling_burst_limit   = var.api_throttling_burst_limit
    detailed_metrics_enabled = false
  }

  dynamic "route_settings" {
    for_each = var.api_route_throttling
    content {
      route_key              = route_settings.key
      throttling_rate_limit  = route_settings.value.rate_limit
      throttling_burst_limit = route_settings.value.burst_limit
    }
  }

  # One JSON object per request. integrationRequestId is api_handler's Lambda
  # request id, which its own log lines carry next to the X-Ray trace id, so an
  # access-log line leads to the trace and the order.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId            = "$context.requestId"
      extendedRequestId    = "$context.extendedRequestId"
      integrationRequestId = "$context.integration.requestId"
      integrationStatus    = "$context.integration.integrationStatus"
      integrationError     = "$context.integration.error"
      integrationLatency   = "$context.integration.latency"
      ip                   = "$context.identity.sourceIp"
      requestTime          = "$context.requestTime"
      httpMethod           = "$context.httpMethod"
      routeKey             = "$context.routeKey"
      path                 = "$context.path"
      status               = "$context.status"
      protocol             = "$context.protocol"
      responseLength       = "$context.responseLength"
      responseLatency      = "$context.responseLatency"
      authorizerError      = "$context.authorizer.error"
      errorMessage         = "$context.error.message"
    })
  }

  # Route settings name routes that must exist first.
  depends_on = [aws_apigatewayv2_route.orders]
}

resource "aws_lambda_permission" "api_gateway" {
  statement_id  = "AllowOrdersApiInvoke"
  action        = "lambda:InvokeFunction"
  function_name = module.functions["api_handler"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.orders.execution_arn}/*/*"
}
