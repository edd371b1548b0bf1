/**
 * ----
 * Rate limits: a token bucket per channel and user, sized by the channel's rule
 * ----
 * A rule with rate_per_second and rate_burst (room:*:chat 20/s, bursts of 50; room:*:queue 10/s,
 * bursts of 20) limits what one user sends or publishes on one channel. The buckets are rows, so
 * the limit holds across any number of function instances. Callers without a user (the
 * service_role key) are not limited.
 */
create table private.rate_buckets (
  channel text not null,
  user_id uuid not null,
  tokens double precision not null,
  refilled_at timestamptz not null,
  primary key (channel, user_id)
);
alter table private.rate_buckets enable row level security;
revoke all on private.rate_buckets from anon, authenticated;

/** Takes `cost` tokens from the caller's bucket on the channel, or raises 429 with a retry time. */
create function private.take_tokens(channel text, rule private.channel_rules, cost int)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  available double precision;
begin
  if rule.rate_per_second is null or caller is null then
    return;
  end if;
  insert into private.rate_buckets as b (channel, user_id, tokens, refilled_at)
  values (take_tokens.channel, caller, rule.rate_burst, clock_timestamp())
  on conflict on constraint rate_buckets_pkey do update
    set tokens = least(rule.rate_burst::double precision,
                       b.tokens + extract(epoch from clock_timestamp() - b.refilled_at) * rule.rate_per_second),
        refilled_at = clock_timestamp()
  returning b.tokens into available;
  if available < cost then
    -- The HINT is the whole seconds to wait: the functions' Retry-After.
    raise exception using errcode = 'WS429', message = 'rate_limited',
      detail = format('Sending is limited to %s messages a second (bursts of %s).', rule.rate_per_second, rule.rate_burst),
      hint = ceil((cost - available) / rule.rate_per_second)::text;
  end if;
  update private.rate_buckets b set tokens = b.tokens - cost
  where b.channel = take_tokens.channel and b.user_id = caller;
end;
$$;
