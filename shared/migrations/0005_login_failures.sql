-- Failed password checks per account (normalised email) and per client IP, in fixed windows that
-- start at the first failure. Past a threshold, attempts answer 429 without running argon2.
CREATE TABLE login_failures (
    scope TEXT NOT NULL CHECK (scope IN ('account', 'ip')),
    key TEXT NOT NULL,
    window_start TEXT NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
