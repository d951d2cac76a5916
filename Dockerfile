# The operator console's assets (its modules bundled by esbuild, bpmn-js, Swagger UI), built once; the image serves them offline.
FROM node:20-slim AS console
WORKDIR /build
COPY console/package.json console/package-lock.json console/build.mjs ./console/
COPY gateway/console/static/js ./gateway/console/static/js
RUN cd console && npm ci --omit=dev --no-audit --no-fund && node build.mjs

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY --from=console /build/gateway/console/static/vendor ./gateway/console/static/vendor
COPY adapters ./adapters
COPY incidents ./incidents
RUN pip install --no-cache-dir . && useradd --system --uid 1001 gateway
USER gateway
# Beyond loopback the gateway demands authentication (PM_AUTH_MODE=none only on purpose): give it the
# identity provider with PM_AUTH_ISSUER (OIDC discovery) or its keys with PM_AUTH_JWKS_FILE / PM_AUTH_PUBLIC_KEY_FILE.
ENV PM_HOST=0.0.0.0 PM_PORT=3007 PM_AUTH_MODE=jwt PM_AUTH_AUDIENCE=pm-gateway
EXPOSE 3007
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3007/health').status == 200 else 1)"
CMD ["pm-gateway"]
