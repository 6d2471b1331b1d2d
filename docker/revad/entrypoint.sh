#!/bin/sh
# Render the devkit/revad/*.toml templates (${NAME} placeholders) with the environment, make the
# gateway and the data server reachable from other containers, and run all configs in one revad.
#   - listen addresses 127.0.0.1:<port> -> 0.0.0.0:<port>
#   - URLs handed to clients (data_server_url, datagateway) -> http://$REVAD_PUBLIC_HOST:<port>
# Service-to-service addresses stay 127.0.0.1: all services run in this one process.
set -eu
: "${JWT_SECRET:?set JWT_SECRET}" "${TRANSFER_SECRET:?set TRANSFER_SECRET}"
: "${MACHINE_AUTH_API_KEY:?set MACHINE_AUTH_API_KEY}"
mkdir -p "$CONFIG_DIR" "$DATA_DIR/data" "$DATA_DIR/tmp"
vars='${GATEWAY_GRPC} ${GATEWAY_HTTP} ${USERS_GRPC} ${STORAGE_USERS_GRPC} ${STORAGE_USERS_HTTP}
${PERMISSIONS_GRPC} ${SHARES_GRPC} ${STORAGE_SHARES_GRPC} ${STORAGE_SYSTEM_GRPC}
${STORAGE_SYSTEM_HTTP} ${DATA_DIR} ${CONFIG_DIR} ${JWT_SECRET} ${TRANSFER_SECRET}
${STORAGE_USERS_ID} ${STORAGE_SHARES_ID} ${LOG_LEVEL} ${SERVICE_USER_ID} ${MACHINE_AUTH_API_KEY}'
templates="${REVAD_TEMPLATES:-/etc/revad/templates}"
for template in "$templates"/*.toml; do
    envsubst "$vars" <"$template" \
        | sed -e 's|^address = "127\.0\.0\.1:|address = "0.0.0.0:|' \
              -e "s|http://127\.0\.0\.1:|http://${REVAD_PUBLIC_HOST}:|g" \
        >"$CONFIG_DIR/$(basename "$template")"
done
cp "$templates/users.demo.json" "$CONFIG_DIR/users.demo.json"
export TMPDIR="$DATA_DIR/tmp"
exec revad -dev-dir "$CONFIG_DIR"
