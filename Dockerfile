FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY incidents ./incidents
RUN pip install --no-cache-dir . && useradd --system --uid 1001 gateway
USER gateway
ENV PM_HOST=0.0.0.0 PM_PORT=3007
EXPOSE 3007
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3007/health').status == 200 else 1)"
CMD ["pm-gateway"]
