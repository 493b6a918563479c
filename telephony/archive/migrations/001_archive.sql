-- The ticket archive: one row set per ended ticket per platform.
-- Every table is keyed so that writing the same ticket twice changes nothing
-- (INSERT ... ON CONFLICT DO NOTHING / DO UPDATE): the writer may retry freely.
-- Times are timestamptz (Asterisk's clock); durations are seconds (double precision).

CREATE TABLE archive_tickets (
    platform        text        NOT NULL,          -- the platform whose service archived it
    ticket_id       text        NOT NULL,
    origin          text        NOT NULL DEFAULT '', -- the platform that first took the call (首接)
    category        text        NOT NULL DEFAULT '',
    callback        text        NOT NULL DEFAULT '',
    division        text        NOT NULL DEFAULT '', -- GB/T 2260 code
    urgency         text        NOT NULL DEFAULT '',
    summary         text        NOT NULL DEFAULT '', -- decoded free text
    queue           text        NOT NULL DEFAULT '',
    agents          text[]      NOT NULL DEFAULT '{}',
    opened_at       timestamptz NOT NULL,          -- its first step on this platform
    closed_at       timestamptz NOT NULL,          -- its last step
    queued_at       timestamptz,
    answered_at     timestamptz,                   -- first agent answer (queue.answered)
    abandoned_at    timestamptz,
    outcome         text        NOT NULL,          -- see telephony/archive/record.py OUTCOMES
    negotiation     text        NOT NULL DEFAULT '', -- a three-party call's result
    police_first    boolean     NOT NULL DEFAULT false,
    transfers       integer     NOT NULL DEFAULT 0,
    steps           integer     NOT NULL DEFAULT 0,
    archived_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, ticket_id)
);
-- Search is by time first: keyset pagination walks (opened_at, ticket_id).
CREATE INDEX archive_tickets_opened ON archive_tickets (platform, opened_at, ticket_id);
CREATE INDEX archive_tickets_category ON archive_tickets (category, opened_at);
CREATE INDEX archive_tickets_division ON archive_tickets (division, opened_at);
CREATE INDEX archive_tickets_outcome ON archive_tickets (outcome, opened_at);
CREATE INDEX archive_tickets_agents ON archive_tickets USING gin (agents);

CREATE TABLE archive_calls (
    platform    text        NOT NULL,
    call_id     text        NOT NULL,
    ticket_id   text        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    duration_s  double precision,
    PRIMARY KEY (platform, call_id),
    FOREIGN KEY (platform, ticket_id) REFERENCES archive_tickets ON DELETE CASCADE
);
CREATE INDEX archive_calls_ticket ON archive_calls (platform, ticket_id);

CREATE TABLE archive_legs (
    platform    text        NOT NULL,
    leg_id      text        NOT NULL,              -- Asterisk Uniqueid
    ticket_id   text        NOT NULL,
    call_id     text        NOT NULL,
    channel     text        NOT NULL DEFAULT '',
    role        text        NOT NULL DEFAULT '',   -- caller | agent | trunk | desk | local
    agent       text        NOT NULL DEFAULT '',
    created_at  timestamptz,
    ring_at     timestamptz,
    answer_at   timestamptz,
    bridge_at   timestamptz,
    left_at     timestamptz,
    cause       text        NOT NULL DEFAULT '',
    PRIMARY KEY (platform, leg_id),
    FOREIGN KEY (platform, ticket_id) REFERENCES archive_tickets ON DELETE CASCADE
);
CREATE INDEX archive_legs_ticket ON archive_legs (platform, ticket_id);

CREATE TABLE archive_transfers (
    platform          text        NOT NULL,
    ticket_id         text        NOT NULL,
    transfer_id       text        NOT NULL,        -- the transfer.started step's id
    call_id           text        NOT NULL,
    kind              text        NOT NULL,        -- blind | attended | threeway | redirect
    status            text        NOT NULL,        -- completed | failed | cancelled | started
    destination       text        NOT NULL DEFAULT '',
    direction         text        NOT NULL DEFAULT '', -- e.g. 12345->110
    initiated_at      timestamptz NOT NULL,
    target_ring_at    timestamptz,
    target_answer_at  timestamptz,
    finished_at       timestamptz,
    caller_drop_at    timestamptz,
    returned_at       timestamptz,
    reason            text        NOT NULL DEFAULT '',
    PRIMARY KEY (platform, ticket_id, transfer_id),
    FOREIGN KEY (platform, ticket_id) REFERENCES archive_tickets ON DELETE CASCADE
);
CREATE INDEX archive_transfers_initiated ON archive_transfers (platform, initiated_at);

CREATE TABLE archive_conferences (
    platform    text        NOT NULL,
    ticket_id   text        NOT NULL,
    name        text        NOT NULL,
    started_at  timestamptz,
    ended_at    timestamptz,
    parties     integer     NOT NULL DEFAULT 0,    -- legs that joined
    PRIMARY KEY (platform, ticket_id, name),
    FOREIGN KEY (platform, ticket_id) REFERENCES archive_tickets ON DELETE CASCADE
);

CREATE TABLE archive_steps (
    platform    text        NOT NULL,
    ticket_id   text        NOT NULL,
    step_id     text        NOT NULL,              -- the Redis timeline entry id
    at          timestamptz NOT NULL,
    kind        text        NOT NULL,
    call_id     text        NOT NULL DEFAULT '',
    leg         text        NOT NULL DEFAULT '',
    data        jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (platform, ticket_id, step_id),
    FOREIGN KEY (platform, ticket_id) REFERENCES archive_tickets ON DELETE CASCADE
);
