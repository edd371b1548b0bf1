// The naive chat-send's SQL (bench/naive/functions/chat-send-naive), created by bench/ingest.ts
// in its throwaway database only: what edge.send_chat does (room check, `send` right, identified
// caller, rate limit, idempotent insert) minus the batching: no flush; instead one realtime.send
// per stored message (event chat:message, payload the Message), in the sender's transaction.
// Each message is stored as sent, numbered from a sequence of its own (so no flush or sweeper
// sends it again; the naive path promises no contiguous seq). push is ignored (the benchmark
// sends none). Called like the functions' entry points: as `postgres`, in the caller's one
// statement (db.ts asCaller).
export const naiveStatements = [
  `create schema bench`,
  `create sequence bench.naive_seq`,
  `create function bench.send_chat_naive(room_id uuid, messages jsonb)
   returns jsonb
   language plpgsql
   security definer
   set search_path = ''
   as $$
   declare
     channel text := 'room:' || send_chat_naive.room_id || ':chat';
     rule private.channel_rules;
     caller uuid := auth.uid();
     message jsonb;
     stored public.messages;
     duplicate boolean;
     accepted jsonb := '[]';
   begin
     if not private.room_exists(send_chat_naive.room_id) then
       perform private.raise_client_error(404, 'room_not_found', 'There is no such room.');
     end if;
     perform private.require_channel_access(channel, 'send');
     if caller is null then
       perform private.raise_client_error(403, 'identified_only', 'Chat messages are sent by users.');
     end if;
     rule := private.channel_rule(private.parse_channel(channel));
     perform private.take_tokens(channel, rule, jsonb_array_length(messages));
     for message in select value from jsonb_array_elements(messages) loop
       insert into public.messages as m (room_id, user_id, client_id, body, seq, broadcast_at)
       values (send_chat_naive.room_id, caller, message ->> 'client_id', message ->> 'body',
               nextval('bench.naive_seq'), clock_timestamp())
       on conflict on constraint messages_room_id_client_id_key do nothing
       returning m.* into stored;
       duplicate := stored.id is null;
       if duplicate then
         select m.* into stored from public.messages m
         where m.room_id = send_chat_naive.room_id and m.client_id = message ->> 'client_id';
       else
         perform realtime.send(private.message_json(stored), 'chat:message', channel, true);
       end if;
       accepted := accepted || jsonb_build_object(
         'client_id', stored.client_id, 'id', stored.id, 'created_at', stored.created_at,
         'duplicate', duplicate);
       stored := null;
     end loop;
     return jsonb_build_object('accepted', accepted);
   end;
   $$`,
];
