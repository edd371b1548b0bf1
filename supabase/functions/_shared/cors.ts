// CORS for browser clients: every response carries these headers, errors included, and an
// OPTIONS preflight is answered before any authentication (as the platform does).
export const corsHeaders: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type, x-retry-count, traceparent, tracestate, baggage",
  "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
  "Access-Control-Max-Age": "86400",
};

export function preflightResponse(): Response {
  return new Response(null, { status: 204, headers: corsHeaders });
}
