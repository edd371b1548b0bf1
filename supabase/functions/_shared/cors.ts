// CORS for browser clients: every response carries these headers, errors included, and an
// OPTIONS preflight is answered before any authentication (as the platform does).
export const corsHeaders: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type, x-retry-count, traceparent, tracestate, baggage",
  "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
  // Browsers hide other response headers from scripts; clients need these to back off and retry.
  "Access-Control-Expose-Headers": "Retry-After, Allow",
  "Access-Control-Max-Age": "86400",
};

export function preflightResponse(): Response {
  return new Response(null, { status: 204, headers: corsHeaders });
}
