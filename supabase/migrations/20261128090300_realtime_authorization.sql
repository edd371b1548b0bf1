/**
 * ----
 * Realtime authorization: RLS on realtime.messages (API.md §3)
 * ----
 * Supabase Realtime decides private-channel rights by probing realtime.messages as the joining
 * user, with realtime.topic() set to the channel: SELECT allowed = may subscribe; INSERT with
 * extension 'broadcast' allowed = may publish; INSERT with extension 'presence' = may enter
 * presence. Each policy asks private.check_channel once per statement (an initPlan, since it
 * reads no column), so the probe costs a few index lookups whatever the table holds.
 * Anonymous-key callers (`anon`) get no policy at all, so they are always denied; the
 * service_role bypasses RLS.
 */
create policy "Channel subscribers are who the channel rules allow"
on realtime.messages for select to authenticated
using (
  extension in ('broadcast', 'presence')
  and (select private.check_channel(realtime.topic(), 'subscribe')) = 'allowed'
);

create policy "Channel publishers are who the channel rules allow"
on realtime.messages for insert to authenticated
with check (
  extension = 'broadcast'
  and (select private.check_channel(realtime.topic(), 'publish')) = 'allowed'
);

create policy "Channel presence members are who the channel rules allow"
on realtime.messages for insert to authenticated
with check (
  extension = 'presence'
  and (select private.check_channel(realtime.topic(), 'presence')) = 'allowed'
);
