# Tollgate API and worker image. The same image runs `tollgate serve` and `tollgate worker`;
# PostgreSQL and Redis are separate services (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY backend ./backend
RUN pip install --no-deps . \
    && rm -rf build backend/*.egg-info

RUN useradd --system --create-home --home-dir /home/tollgate tollgate
USER tollgate
# Only used if DATABASE_URL / REDIS_URL are left unset (embedded servers).
ENV TOLLGATE_DATA_DIR=/home/tollgate/data \
    TOLLGATE_ENV=production

EXPOSE 8000
CMD ["tollgate", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]
