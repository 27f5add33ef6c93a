-- Aegra 0.11.0's own tables that pruning touches (thread, and what cascades from it),
-- as pg_dump --schema-only --no-owner --no-privileges printed them from the database a
-- real Aegra 0.11.0 server made (alembic a3f7c1d9e2b4, PostgreSQL 17.12, `make stack`,
-- 2026-12-02). bench/prune_checkpoints.py creates them in its scratch database, so the
-- pruning it measures is the one an Aegra deployment runs.

CREATE TABLE public.assistant (
    assistant_id text DEFAULT (gen_random_uuid())::text NOT NULL,
    name text NOT NULL,
    description text,
    graph_id text NOT NULL,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    user_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    context jsonb DEFAULT '{}'::jsonb NOT NULL,
    version integer DEFAULT 1 NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL
);

CREATE TABLE public.crons (
    cron_id text DEFAULT (gen_random_uuid())::text NOT NULL,
    assistant_id text NOT NULL,
    thread_id text,
    user_id text NOT NULL,
    schedule text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    on_run_completed text,
    enabled boolean DEFAULT true NOT NULL,
    end_time timestamp with time zone,
    next_run_date timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    claimed_until timestamp with time zone
);

CREATE TABLE public.runs (
    run_id text DEFAULT (gen_random_uuid())::text NOT NULL,
    thread_id text NOT NULL,
    assistant_id text,
    status text DEFAULT 'pending'::text NOT NULL,
    input jsonb DEFAULT '{}'::jsonb,
    config jsonb,
    output jsonb,
    error_message text,
    user_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    context jsonb,
    execution_params jsonb,
    claimed_by text,
    lease_expires_at timestamp with time zone
);

CREATE TABLE public.thread (
    thread_id text NOT NULL,
    status text DEFAULT 'idle'::text NOT NULL,
    metadata_json jsonb DEFAULT '{}'::jsonb NOT NULL,
    user_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.thread_ttl (
    thread_id text NOT NULL,
    strategy text DEFAULT 'delete'::text NOT NULL,
    ttl_minutes double precision NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

ALTER TABLE ONLY public.assistant
    ADD CONSTRAINT assistant_pkey PRIMARY KEY (assistant_id);

ALTER TABLE ONLY public.crons
    ADD CONSTRAINT crons_pkey PRIMARY KEY (cron_id);

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY public.thread
    ADD CONSTRAINT thread_pkey PRIMARY KEY (thread_id);

ALTER TABLE ONLY public.thread_ttl
    ADD CONSTRAINT thread_ttl_pkey PRIMARY KEY (thread_id);

CREATE INDEX idx_assistant_metadata_gin ON public.assistant USING gin (metadata jsonb_path_ops);

CREATE INDEX idx_assistant_user ON public.assistant USING btree (user_id);

CREATE UNIQUE INDEX idx_assistant_user_assistant ON public.assistant USING btree (user_id, assistant_id);

CREATE UNIQUE INDEX idx_assistant_user_graph_config ON public.assistant USING btree (user_id, graph_id, md5((config)::text));

CREATE INDEX idx_cron_assistant_id ON public.crons USING btree (assistant_id);

CREATE INDEX idx_cron_next_run ON public.crons USING btree (enabled, next_run_date);

CREATE INDEX idx_cron_thread_id ON public.crons USING btree (thread_id);

CREATE INDEX idx_cron_user ON public.crons USING btree (user_id);

CREATE INDEX idx_runs_assistant_id ON public.runs USING btree (assistant_id);

CREATE INDEX idx_runs_created_at ON public.runs USING btree (created_at);

CREATE INDEX idx_runs_lease_reaper ON public.runs USING btree (status, lease_expires_at);

CREATE INDEX idx_runs_status ON public.runs USING btree (status);

CREATE INDEX idx_runs_thread_id ON public.runs USING btree (thread_id);

CREATE INDEX idx_runs_user ON public.runs USING btree (user_id);

CREATE INDEX idx_thread_metadata_gin ON public.thread USING gin (metadata_json jsonb_path_ops);

CREATE INDEX idx_thread_ttl_expires_at ON public.thread_ttl USING btree (expires_at);

CREATE INDEX idx_thread_user ON public.thread USING btree (user_id);

ALTER TABLE ONLY public.crons
    ADD CONSTRAINT crons_assistant_id_fkey FOREIGN KEY (assistant_id) REFERENCES public.assistant(assistant_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.crons
    ADD CONSTRAINT crons_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.thread(thread_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_assistant_id_fkey FOREIGN KEY (assistant_id) REFERENCES public.assistant(assistant_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.thread(thread_id) ON DELETE CASCADE;

ALTER TABLE ONLY public.thread_ttl
    ADD CONSTRAINT thread_ttl_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.thread(thread_id) ON DELETE CASCADE;

