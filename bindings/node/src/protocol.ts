// GENERATED from schemas/ by scripts/gen_docs.py: do not edit.
/* eslint-disable */

export type ModelId = string;

export type StreamId = string;

export type RequestId = string | number | null;

export type FinishReason = "stop" | "length" | "cancelled" | "timeout" | "error" | "tool_calls";

export type Limits = {
  max_line_bytes: number;
  default_max_tokens: number;
  max_tokens: number;
  max_prompt_tokens: number;
  prefill_step: number;
  max_active_streams: number;
  max_queued: number;
  max_outbound_queue: number;
  coalesce_ms: number;
  breaker_threshold: number;
  breaker_window_ms: number;
  breaker_cooldown_ms: number;
  memory_budget_mb: number;
  batching: boolean;
  /** A structured-output schema or grammar larger than this (as JSON) gets -32004. */
  max_guidance_bytes: number;
  /** Compiled structured-output grammars kept per model, least recently used out. */
  guide_cache_size: number;
  /** One image, encoded. */
  max_image_bytes: number;
  /** One image, decoded (width x height). */
  max_image_pixels: number;
  /** Images per request. */
  max_images: number;
  /** Directories image file paths may come from (empty: paths refused). */
  image_dirs: string[];
  /** URL prefixes images may be fetched from (empty: URLs refused). */
  image_url_prefixes: string[];
  /** KV caches kept for prefix reuse, per model. */
  prompt_cache_bytes: number;
  /** Cached prefixes per model; 0 turns prefix reuse off. */
  prompt_cache_entries: number;
  /** Where session/save writes. */
  cache_dir: string;
  /** The models file (the registry, docs/models.md); empty for none. */
  models: string;
  /** Directories local models may be loaded from (empty: any directory). */
  model_dirs: string[];
  /** Models loaded at once; 0: no count limit (the memory budget still applies). */
  max_loaded_models: number;
  /** What happens to the streams of a model unloaded to make room: drain (they finish first) or cancel. */
  switch_policy: "drain" | "cancel";
  /** How long a model loaded on demand stays loaded once idle: a duration ("5m"), seconds, 0 (unload when its last stream ends) or -1 (never). */
  keep_alive: string;
  /** Low-memory mode: text models load with an 8-bit KV cache and a context of at most 4096 tokens, prefill steps are at most 128 tokens, and MLX's buffer cache is limited to 64 MB. */
  low_memory: boolean;
  /** Under thermal pressure (the hottest thermal zone at or above thermal_limit_c), new streams are paced (one per thermal_pace_ms; none when critical, 10 °C above) or paused; running streams go on. off: not looked at. */
  thermal_policy: "off" | "pace" | "pause";
  thermal_limit_c: number;
  thermal_pace_ms: number;
  /** Embed/rerank inputs in one forward pass; one pass runs between two decode steps. */
  embed_batch_size: number;
  /** Padded tokens in one embed/rerank pass (a longer single input runs alone). */
  embed_batch_tokens: number;
  /** Inputs (or rerank documents) in one embed or rerank request. */
  max_embed_inputs: number;
  /** Embeddings kept for reuse across all models, least recently used out (0: off). */
  embed_cache_entries: number;
  /** Bytes of float32 vectors the embedding cache keeps. */
  embed_cache_bytes: number;
};

export type BreakerState = "closed" | "open" | "half_open";

export type Message = {
  role: "system" | "developer" | "user" | "assistant" | "tool";
  content?: string | null | ContentPart[];
  name?: string;
  /** OpenAI: the calls an assistant made (arguments as a JSON string, or an object). */
  tool_calls?: MessageToolCall[];
  /** OpenAI: the call a tool message answers. */
  tool_call_id?: string;
  /** An assistant's thinking (rendered where the template renders it). */
  reasoning_content?: string;
  /** Same as reasoning_content. */
  reasoning?: string;
  /** OpenAI: accepted and ignored. */
  refusal?: string | null;
};

export type TopLogprob = {
  token_id: number;
  token: string;
  logprob: number;
};

export type TokenEntry = {
  /** The text. Chat streams: the answer's text only; thinking goes in reasoning and tool calls in tool_calls (never as raw tags). */
  token: string;
  token_id: number;
  is_final: boolean;
  logprob?: number;
  top_logprobs?: TopLogprob[];
  /** Speculative streams only: the draft proposed this token and the target kept it. */
  from_draft?: boolean;
  /** Chat streams: thinking text of this token. */
  reasoning?: string;
  /** Chat streams: tool-call pieces of this token. */
  tool_calls?: ToolCallDelta[];
};

export type BatchResult = {
  success: boolean;
  result: unknown;
  error: string | null;
  code?: number;
  data?: { [key: string]: unknown } | null;
};

export type ModelInfo = {
  model_id: ModelId;
  state: "ready";
  context_length: number;
  parameter_count: number;
  dtype: string;
  is_vision_model: boolean;
  vocab_size: number;
  memory_bytes: number;
  /** Milliseconds the host waited for this load: from when the runtime took the load_model request in to when the model was ready (resolving the directory, the memory check, the first load's imports of mlx-lm or mlx-vlm, reading the weights). A load shared with, or answered from, an earlier one reports that load's time. */
  load_time_ms: number;
  source: "embedded" | "local" | "hub";
  eos_token_ids: number[];
  has_chat_template: boolean;
  /** load_model with draft_model_id: the pairing made. */
  draft?: DraftPairing;
  /** What serves the model's quantized layers on the CPU (load_model's cpu_weights): the native kernels, fp32 weights dequantized at load, or MLX's own quantized path; null for a model without quantized layers or off the CPU. */
  cpu_weights: "native" | "fp32" | "mlx" | null;
  /** How the model keeps its KV cache: kv_bits (null: full precision) and max_kv_size (null: unbounded). */
  kv_cache: {
    kv_bits: 4 | 8 | null;
    max_kv_size: number | null;
  };
  /** What the model serves: generate, embed (embed) or rerank (rerank). */
  task: "generate" | "embed" | "rerank";
  /** Embedders and rerankers: the model family (encoder through mlx-embeddings, decoder through mlx-lm, cross-encoder), the longest input in tokens, and for embedders the vector length, the model's pooling, the poolings a request may ask for and the prompt names it knows (input_type). */
  pooling?: {
    family: "encoder" | "decoder" | "cross-encoder";
    max_length: number;
    dimensions?: number;
    pooling?: "mean" | "cls" | "last" | "max";
    poolings?: ("mean" | "cls" | "last" | "max")[];
    prompts?: string[];
  };
  /** Across a distributed group: how the model is split over the ranks (load_model's parallel). Absent on one machine. */
  parallel?: "tensor" | "pipeline" | "mlp";
};

export type DraftPairing = {
  model_id: ModelId;
  num_draft_tokens: number;
};

export type ImageSource = string | {
  data?: string;
  path?: string;
  url?: string;
};

export type ContentPart = {
  type: "text" | "image_url" | "image" | "input_image" | "tool_use" | "tool_result" | "thinking" | "redacted_thinking";
  text?: string;
  image_url?: string | {
    url: string;
    detail?: string;
  };
  data?: string;
  path?: string;
  url?: string;
  /** Anthropic image: {type: base64, media_type, data} or {type: url, url}. */
  source?: {
    type: "base64" | "url";
    media_type?: string;
    data?: string;
    url?: string;
  };
  /** tool_use: the call's id. */
  id?: string;
  /** tool_use: the tool's name. */
  name?: string;
  /** tool_use: the call's arguments. */
  input?: { [key: string]: unknown };
  /** tool_result: the call it answers. */
  tool_use_id?: string;
  /** tool_result: the result, as text or text blocks. */
  content?: string | {
    type: "text";
    text: string;
    [key: string]: unknown;
  }[];
  /** tool_result: the tool failed. */
  is_error?: boolean;
  /** thinking: the text of an assistant's thinking. */
  thinking?: string;
  /** thinking: accepted and ignored (a local model signs nothing). */
  signature?: string;
  /** Anthropic: accepted and ignored (the prompt cache is automatic). */
  cache_control?: { [key: string]: unknown };
};

export type SessionId = string;

export type KeepAlive = number | string;

export type MessageToolCall = {
  id?: string;
  type?: "function";
  function: {
    name: string;
    arguments?: string | { [key: string]: unknown };
  };
};

export type Tool = {
  type?: "function";
  function?: {
    name: string;
    description?: string;
    parameters?: { [key: string]: unknown };
    strict?: boolean | null;
  };
  name?: string;
  description?: string;
  input_schema?: { [key: string]: unknown };
  cache_control?: { [key: string]: unknown };
};

export type ToolChoice = "auto" | "none" | "required" | {
  type: "function" | "auto" | "any" | "tool" | "none";
  function?: {
    name: string;
  };
  name?: string;
  disable_parallel_tool_use?: boolean;
};

export type ToolCallDelta = {
  index: number;
  id?: string;
  type?: "function";
  function: {
    name?: string;
    arguments?: string;
  };
};

export type ToolCall = {
  index: number;
  id: string;
  type: "function";
  name: string;
  /** The parsed arguments (a JSON object). */
  arguments: unknown;
  function: {
    name: string;
    arguments: string;
  };
};

export type ToolCallError = {
  index: number;
  raw: string;
  reason: string;
};

export type Usage = {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  /** Generated tokens spent thinking (the thinking markers included). */
  reasoning_tokens: number;
  prompt_tokens_details: {
    cached_tokens: number;
  };
  completion_tokens_details: {
    reasoning_tokens: number;
  };
};

export type ChatOutcome = {
  /** Chat streams: the answer's whole text (thinking and tool calls apart). */
  content?: string;
  /** Chat streams: the whole thinking text. */
  reasoning?: string;
  tool_calls?: ToolCall[];
  tool_call_errors?: ToolCallError[];
  [key: string]: unknown;
};

/** Several check_draft calls; one result per request, in order. Each entry is check_draft's params (primary_id, draft_id, measure, num_draft_tokens, probe_tokens) and succeeds or fails on its own; entries with measure: true are measured one after another, never side by side. */
export type BatchCheckDraftParams = {
  requests: { [key: string]: unknown }[];
};
export type BatchCheckDraftResult = {
  results: BatchResult[];
};

/** Start several streams; one result per request, in order (the peer host's default path). */
export type BatchGenerateParams = {
  requests: { [key: string]: unknown }[];
};
export type BatchGenerateResult = {
  results: BatchResult[];
};

/** Several tokenize calls; one result per request, in order. */
export type BatchTokenizeParams = {
  requests: { [key: string]: unknown }[];
};
export type BatchTokenizeResult = {
  results: BatchResult[];
};

/** Stop a stream within one token step (also during prefill); it ends with finish_reason cancelled. */
export type CancelParams = {
  stream_id: StreamId;
};
export type CancelResult = {
  stream_id: StreamId;
  cancelled: boolean;
};

/** Whether a loaded draft can serve a loaded target (same vocabulary and special tokens, trimmable caches), and with measure: true a measured speed-up on a short greedy probe (the engine runs the probe between other work). */
export type CheckDraftParams = {
  primary_id: ModelId;
  draft_id: ModelId;
  /** Decode a probe with and without the draft and report the speed-up. */
  measure?: boolean;
  /** Measure only this draft length (default: a sweep of 1, 2, 3, 4, 6). */
  num_draft_tokens?: number;
  probe_tokens?: number;
};
export type CheckDraftResult = {
  compatible: boolean;
  errors: string[];
  warnings: string[];
  details: {
    primary_model: {
      id: ModelId;
      vocab_size: number;
      parameter_count: number;
      architecture: string | null;
    };
    draft_model: {
      id: ModelId;
      vocab_size: number;
      parameter_count: number;
      architecture: string | null;
    };
    size_ratio: number;
    checks: { [key: string]: boolean };
    /** Peer-compatible summary of the measurement (only with measure: true). */
    performance_estimate?: {
      expected_speedup: string;
      size_ratio: string;
      recommendation: string;
    };
  };
  measurement?: {
    verdict: "faster" | "slower" | "no difference";
    speedup: number;
    num_draft_tokens: number;
    acceptance_rate: number;
    baseline_tokens_per_second: number;
    speculative_tokens_per_second: number;
    probe_tokens: number;
    sweep: {
      num_draft_tokens: number;
      tokens_per_second: number;
      acceptance_rate: number;
      speedup: number;
    }[];
  };
};

/** The prompt's token count exactly as generate would build it (Anthropic's count_tokens): messages in OpenAI or Anthropic form with tools and template options, or a prompt. Answered on the reader thread. */
export type CountTokensParams = {
  model_id: ModelId;
  prompt?: string;
  messages?: Message[];
  format?: "openai" | "anthropic";
  system?: string | {
    type: "text";
    text: string;
    cache_control?: { [key: string]: unknown };
  }[];
  tools?: Tool[];
  tool_choice?: ToolChoice;
  parallel_tool_calls?: boolean;
  chat_template_kwargs?: { [key: string]: unknown };
  thinking?: {
    type: "enabled" | "disabled";
    budget_tokens?: number;
  };
  keep_alive?: KeepAlive;
};
export type CountTokensResult = {
  model_id: ModelId;
  input_tokens: number;
};

/** The text of token ids. */
export type DetokenizeParams = {
  model_id: ModelId;
  tokens: number[];
  skip_special_tokens?: boolean;
};
export type DetokenizeResult = {
  text: string;
};

/** Notification: cancel the streams started by request `id`. */
export type CancelRequestParams = {
  id: string | number;
};
export type CancelRequestResult = null;

/** Embedding vectors of one or many inputs from an embedding model (task embed). Inputs are batched on the engine thread (padded, grouped by length; at most embed_batch_size inputs and embed_batch_tokens padded tokens per forward pass, one pass between two decode steps of running streams), through the same admission queue and breaker as generation; vectors already computed for the same model, options and tokens come from the embedding cache (usage.cached_inputs). docs/embeddings.md. */
export type EmbedParams = {
  model_id: ModelId;
  /** A string, a list of strings, a list of token ids (one input), or a list of token-id lists. Token ids are used as given (no special tokens added). */
  input: string | string[] | number[] | number[][];
  /** L2-normalise each vector (after dimensions). */
  normalize?: boolean;
  /** Matryoshka truncation: keep the first this many components, then normalise again. */
  dimensions?: number;
  /** An input longer than the model takes: cut its end, cut its start, or refuse it (-32602 naming the input). */
  truncate?: "end" | "start" | "none";
  /** Override the model's pooling where its family allows it (encoders: mean, cls, max; decoders: last, mean); model_info.pooling.poolings lists them. */
  pooling?: "mean" | "cls" | "last" | "max";
  /** float: lists of numbers; base64: each vector as base64 of little-endian float32 (OpenAI's encoding_format). */
  encoding_format?: "float" | "base64";
  /** query or document (or another prompt name the model's sentence-transformers config defines): its prompt goes before each input; a model without that prompt embeds the text alone. */
  input_type?: string;
  /** Decoder embedders (Qwen3-Embedding style): queries are embedded as 'Instruct: {instruction}\nQuery:{text}'. */
  instruction?: string;
  /** Order in the admission queue (shared with generation streams); first come first served within a priority. */
  priority?: "high" | "normal" | "low";
  /** Deadline for queue wait plus the forward passes; expiry answers -32009 with reason timeout. */
  timeout_ms?: number;
  /** How long its model stays loaded once idle after this request (replaces the model's). */
  keep_alive?: KeepAlive;
};
export type EmbedResult = {
  model_id: ModelId;
  data: ({
    index: number;
    embedding: number[] | string;
  })[];
  dimensions: number;
  encoding_format: "float" | "base64";
  /** Indices of the inputs cut to fit the model. */
  truncated: number[];
  usage: {
    prompt_tokens: number;
    total_tokens: number;
    /** Inputs answered from the embedding cache. */
    cached_inputs: number;
    /** Their tokens (not run through the model). */
    cached_tokens: number;
  };
  /** Forward passes this request's inputs took part in (0: all from the cache). */
  batches: number;
};

/** Start a stream; answers {stream_id, started_at} at once, then stream.chunk, stream.stats and one stream.event. */
export type GenerateParams = {
  model_id: ModelId;
  /** Used as given, like mlx_lm.generate. */
  prompt?: string;
  /** Chat messages; the model's chat template is applied. */
  messages?: Message[];
  prompt_tokens?: number[];
  stream_id?: StreamId;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  logit_bias?: { [key: string]: number };
  seed?: number;
  stop_sequences?: string[];
  stop_token_ids?: number[];
  logprobs?: boolean;
  top_logprobs?: number;
  /** Order in the admission queue; first come first served within a priority. */
  priority?: "high" | "normal" | "low";
  /** Deadline for queue wait plus generation; expiry ends the stream with finish_reason timeout. */
  timeout_ms?: number;
  /** false: no stream notifications; the response is the whole output (content, reasoning, tool_calls, finish_reason, usage, stats). */
  streaming?: boolean;
  /** Structured output, enforced token by token (each mode's payload in its own field; see docs/structured-output.md). Peer-compatible {mode, schema}. */
  guidance?: {
    mode: "json_schema" | "json_object" | "regex" | "choice" | "grammar" | "xml";
    /** json_schema: a JSON Schema (2020-12; an object, or the same as a JSON string). xml: an XSD string or an element description object. */
    schema?: { [key: string]: unknown } | boolean | string;
    /** regex: the whole output matches it (Rust regex syntax, anchored). */
    pattern?: string;
    /** choice: the output is exactly one of these strings. */
    choices?: string[];
    /** grammar (or xml): a Lark grammar with a start rule, or EBNF (GBNF dialect, root rule) with syntax ebnf. */
    grammar?: string;
    syntax?: "lark" | "ebnf" | "gbnf";
    /** OpenAI's strict mode: object schemas without additionalProperties are closed (docs/structured-output.md). */
    strict?: boolean;
    /** Tighten the schema so that every output is complete and valid within max_tokens; -32004 with needed_max_tokens when even its smallest caps do not fit. */
    fit_max_tokens?: boolean;
    /** The grammar engine: llguidance (every mode), or outlines-core (json_schema, regex, choice). */
    engine?: "llguidance" | "outlines";
  } | {
    mode: "json_schema" | "json_object" | "regex" | "choice" | "grammar" | "xml";
    /** json_schema: a JSON Schema (2020-12; an object, or the same as a JSON string). xml: an XSD string or an element description object. */
    schema?: { [key: string]: unknown } | boolean | string;
    /** regex: the whole output matches it (Rust regex syntax, anchored). */
    pattern?: string;
    /** choice: the output is exactly one of these strings. */
    choices?: string[];
    /** grammar (or xml): a Lark grammar with a start rule, or EBNF (GBNF dialect, root rule) with syntax ebnf. */
    grammar?: string;
    syntax?: "lark" | "ebnf" | "gbnf";
    /** OpenAI's strict mode: object schemas without additionalProperties are closed (docs/structured-output.md). */
    strict?: boolean;
    /** Tighten the schema so that every output is complete and valid within max_tokens; -32004 with needed_max_tokens when even its smallest caps do not fit. */
    fit_max_tokens?: boolean;
    /** The grammar engine: llguidance (every mode), or outlines-core (json_schema, regex, choice). */
    engine?: "llguidance" | "outlines";
  };
  /** Speculative decoding with this loaded draft (checked against the target); null: no draft even if the target has a pairing; absent: the pairing's draft, if any. */
  draft_model?: string | null;
  /** OpenAI-style alias of guidance: {type: text | json_object | json_schema, json_schema: {name, schema, strict}}. */
  response_format?: {
    type: "text" | "json_object" | "json_schema";
    json_schema?: {
      name?: string;
      description?: string;
      schema?: { [key: string]: unknown } | boolean;
      strict?: boolean | null;
    };
  } | {
    type: "text" | "json_object" | "json_schema";
    json_schema?: {
      name?: string;
      description?: string;
      schema?: { [key: string]: unknown } | boolean;
      strict?: boolean | null;
    };
  };
  /** Draft tokens proposed per round (default: the pairing's, else 3). */
  num_draft_tokens?: number;
  /** Pins this conversation's KV cache (not evicted; session/save can write it to disk). The next turn of the same session reuses it. */
  session_id?: SessionId;
  /** false: neither reuse a cached prefix nor keep this stream's cache. */
  prompt_cache?: boolean;
  /** How long its model stays loaded once idle after this request (Ollama's keep_alive; replaces the model's). */
  keep_alive?: KeepAlive;
  /** OpenAI's name for streaming. */
  stream?: boolean;
  /** The shape of messages, tools and tool_choice; by default detected from the shape. */
  format?: "openai" | "anthropic";
  /** Anthropic: the system prompt (a string or text blocks). */
  system?: string | {
    type: "text";
    text: string;
    cache_control?: { [key: string]: unknown };
  }[];
  /** Function tools, rendered through the chat template's tools variable; calls in the output are parsed by the model's mlx-lm tool parser. */
  tools?: Tool[];
  tool_choice?: ToolChoice;
  /** OpenAI: false allows one call under tool_choice required. */
  parallel_tool_calls?: boolean;
  /** Passed to the chat template (e.g. {enable_thinking: false}). */
  chat_template_kwargs?: { [key: string]: unknown };
  /** Anthropic: enabled (with a budget) or disabled thinking; maps onto enable_thinking and reasoning_budget. */
  thinking?: {
    type: "enabled" | "disabled";
    budget_tokens?: number;
  };
  /** Thinking tokens allowed; when spent, the end of thinking is forced and the answer follows. */
  reasoning_budget?: number;
  /** Vision models with a prompt: use the prompt as given (the image token put first) instead of rendering it through the model's chat template. */
  raw_prompt?: boolean;
  /** For guidance or response_format: every output is complete and valid within max_tokens (docs/structured-output.md). */
  fit_max_tokens?: boolean;
};
export type GenerateResult = {
  stream_id: StreamId;
  started_at: number;
  /** The prompt's tokens as the stream will process them (a vision prompt: the text's estimate before its images expand). */
  prompt_tokens?: number;
} | {
  stream_id: StreamId;
  started_at: number;
  content: string;
  finish_reason: FinishReason;
  reasoning?: string;
  tool_calls?: ToolCall[];
  tool_call_errors?: ToolCallError[];
  guidance?: { [key: string]: unknown };
  parsed?: unknown;
  usage: Usage;
  /** What stream.stats would have said (without stream_id). */
  stats: { [key: string]: unknown };
  /** With logprobs or top_logprobs: every token entry. */
  tokens?: TokenEntry[];
  /** finish_reason stop because a stop sequence appeared: which one (the earliest in the text). */
  stop_sequence?: string;
};

/** Peer-compatible: a vision model, a prompt and one image; <image> is put first when the prompt has none. Streams like generate. */
export type GenerateWithImageParams = {
  model_id: ModelId;
  /** Used as given, like mlx_lm.generate. */
  prompt: string;
  stream_id?: StreamId;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  logit_bias?: { [key: string]: number };
  seed?: number;
  stop_sequences?: string[];
  stop_token_ids?: number[];
  logprobs?: boolean;
  top_logprobs?: number;
  /** Order in the admission queue; first come first served within a priority. */
  priority?: "high" | "normal" | "low";
  /** Deadline for queue wait plus generation; expiry ends the stream with finish_reason timeout. */
  timeout_ms?: number;
  /** false: no stream notifications; the response is the whole output (content, reasoning, tool_calls, finish_reason, usage, stats). */
  streaming?: boolean;
  /** Structured output, enforced token by token (each mode's payload in its own field; see docs/structured-output.md). Peer-compatible {mode, schema}. */
  guidance?: {
    mode: "json_schema" | "json_object" | "regex" | "choice" | "grammar" | "xml";
    /** json_schema: a JSON Schema (2020-12; an object, or the same as a JSON string). xml: an XSD string or an element description object. */
    schema?: { [key: string]: unknown } | boolean | string;
    /** regex: the whole output matches it (Rust regex syntax, anchored). */
    pattern?: string;
    /** choice: the output is exactly one of these strings. */
    choices?: string[];
    /** grammar (or xml): a Lark grammar with a start rule, or EBNF (GBNF dialect, root rule) with syntax ebnf. */
    grammar?: string;
    syntax?: "lark" | "ebnf" | "gbnf";
    /** OpenAI's strict mode: object schemas without additionalProperties are closed (docs/structured-output.md). */
    strict?: boolean;
    /** Tighten the schema so that every output is complete and valid within max_tokens; -32004 with needed_max_tokens when even its smallest caps do not fit. */
    fit_max_tokens?: boolean;
    /** The grammar engine: llguidance (every mode), or outlines-core (json_schema, regex, choice). */
    engine?: "llguidance" | "outlines";
  } | {
    mode: "json_schema" | "json_object" | "regex" | "choice" | "grammar" | "xml";
    /** json_schema: a JSON Schema (2020-12; an object, or the same as a JSON string). xml: an XSD string or an element description object. */
    schema?: { [key: string]: unknown } | boolean | string;
    /** regex: the whole output matches it (Rust regex syntax, anchored). */
    pattern?: string;
    /** choice: the output is exactly one of these strings. */
    choices?: string[];
    /** grammar (or xml): a Lark grammar with a start rule, or EBNF (GBNF dialect, root rule) with syntax ebnf. */
    grammar?: string;
    syntax?: "lark" | "ebnf" | "gbnf";
    /** OpenAI's strict mode: object schemas without additionalProperties are closed (docs/structured-output.md). */
    strict?: boolean;
    /** Tighten the schema so that every output is complete and valid within max_tokens; -32004 with needed_max_tokens when even its smallest caps do not fit. */
    fit_max_tokens?: boolean;
    /** The grammar engine: llguidance (every mode), or outlines-core (json_schema, regex, choice). */
    engine?: "llguidance" | "outlines";
  };
  /** OpenAI-style alias of guidance: {type: text | json_object | json_schema, json_schema: {name, schema, strict}}. */
  response_format?: {
    type: "text" | "json_object" | "json_schema";
    json_schema?: {
      name?: string;
      description?: string;
      schema?: { [key: string]: unknown } | boolean;
      strict?: boolean | null;
    };
  } | {
    type: "text" | "json_object" | "json_schema";
    json_schema?: {
      name?: string;
      description?: string;
      schema?: { [key: string]: unknown } | boolean;
      strict?: boolean | null;
    };
  };
  image: ImageSource;
  /** OpenAI's name for streaming. */
  stream?: boolean;
  /** Vision models with a prompt: use the prompt as given (the image token put first) instead of rendering it through the model's chat template. */
  raw_prompt?: boolean;
  /** For guidance or response_format: every output is complete and valid within max_tokens (docs/structured-output.md). */
  fit_max_tokens?: boolean;
};
export type GenerateWithImageResult = {
  stream_id: StreamId;
  started_at: number;
  /** The prompt's tokens as the stream will process them (a vision prompt: the text's estimate before its images expand). */
  prompt_tokens?: number;
} | {
  stream_id: StreamId;
  started_at: number;
  content: string;
  finish_reason: FinishReason;
  reasoning?: string;
  tool_calls?: ToolCall[];
  tool_call_errors?: ToolCallError[];
  guidance?: { [key: string]: unknown };
  parsed?: unknown;
  usage: Usage;
  /** What stream.stats would have said (without stream_id). */
  stats: { [key: string]: unknown };
  /** With logprobs or top_logprobs: every token entry. */
  tokens?: TokenEntry[];
  /** finish_reason stop because a stop sequence appeared: which one (the earliest in the text). */
  stop_sequence?: string;
};

/** Load a model from the embedded set, a local directory or the Hugging Face cache/hub. Emits model.progress. */
export type LoadModelParams = {
  model_id: ModelId;
  local_path?: string;
  revision?: string;
  context_length?: number;
  /** Sent by the peer host; has no effect. */
  draft?: boolean;
  /** Pair the target with this draft (loaded first if it is not): its requests draft with it by default. */
  draft_model_id?: ModelId;
  /** Draft tokens proposed per round (default: the pairing's, else 3). */
  num_draft_tokens?: number;
  /** On the CPU, for a quantized model: native (the native kernels; refused when they are not in use), fp32 (dequantize the quantized layers once at load: 4-8x the memory, MLX's fast fp32 matmuls), auto (native when in use, else fp32 when the memory budget allows, else MLX's quantized path). Ignored on Metal and CUDA. docs/native.md. */
  cpu_weights?: "native" | "fp32" | "auto";
  /** How long the model stays loaded once idle (default: -1, never, for a load by hand; the models file's value for a registered model). */
  keep_alive?: KeepAlive;
  /** Keep the KV cache quantized to this many bits (mlx-lm's QuantizedKVCache, from the first token): about 1/2 (8) or 1/4 (4) of fp16's memory. Streams of such a model decode one by one (round-robin), not in one batch, and it keeps no prompt cache. Text models only; not with max_kv_size. */
  kv_bits?: 4 | 8;
  /** Bound the KV cache to this many tokens (a rotating cache: older tokens are dropped, the first 4 kept; one prefill chunk more while prefilling). Text models only; not with kv_bits; decoded one by one, no prompt cache. */
  max_kv_size?: number;
  /** Low-memory defaults for this model: kv_bits 8 (unless max_kv_size is given) and a context of at most 4096 tokens (the runtime's --low-memory sets it for every load). */
  low_memory?: boolean;
  /** What the model serves: generate (text), embed (embed) or rerank (rerank). Default: what its files say (docs/embeddings.md): an encoder embeds, a classifier reranks, a decoder with a sentence-transformers Pooling module embeds, a decoder named like a reranker reranks, any other decoder generates. A decoder may be loaded to embed (its final hidden states, last-token pooling) or to rerank (yes/no logits). */
  task?: "generate" | "embed" | "rerank";
  /** Across a distributed group (runtime --distributed): tensor splits every layer's attention heads and MLP over the ranks (mlx-lm's shard()); pipeline gives each rank a run of whole layers (mlx-lm's pipeline()); mlp splits only the MLP projections (MLX's shard_linear), attention computed on every rank, for models whose heads do not divide among the ranks. auto takes the first of these the model allows. A model that allows none is refused with -32011. Ignored on one machine. docs/distributed.md. */
  parallel?: "auto" | "tensor" | "pipeline" | "mlp";
};
export type LoadModelResult = ModelInfo;

/** Peer-compatible: load_model for a vision model (refused for a text model), with its processor described. load_model also loads vision models (detected from config.json). */
export type LoadVisionModelParams = {
  model_id: ModelId;
  local_path?: string;
  revision?: string;
  /** Accepted for peer compatibility; not applied. */
  quantization?: null | "int4" | "int8" | "fp16" | "bf16";
  /** On the CPU, for a quantized model: native (the native kernels; refused when they are not in use), fp32 (dequantize the quantized layers once at load: 4-8x the memory, MLX's fast fp32 matmuls), auto (native when in use, else fp32 when the memory budget allows, else MLX's quantized path). Ignored on Metal and CUDA. docs/native.md. */
  cpu_weights?: "native" | "fp32" | "auto";
};
export type LoadVisionModelResult = {
  model_id: ModelId;
  state: "ready";
  context_length: number;
  parameter_count: number;
  dtype: string;
  is_vision_model: boolean;
  vocab_size: number;
  memory_bytes: number;
  /** Milliseconds the host waited for this load: from when the runtime took the load_model request in to when the model was ready (resolving the directory, the memory check, the first load's imports of mlx-lm or mlx-vlm, reading the weights). A load shared with, or answered from, an earlier one reports that load's time. */
  load_time_ms: number;
  source: "embedded" | "local" | "hub";
  eos_token_ids: number[];
  has_chat_template: boolean;
  /** load_model with draft_model_id: the pairing made. */
  draft?: DraftPairing;
  processor_type: string;
  image_size: number | null;
  revision: string;
  quantization: string | null;
  /** What serves the model's quantized layers on the CPU (load_model's cpu_weights): the native kernels, fp32 weights dequantized at load, or MLX's own quantized path; null for a model without quantized layers or off the CPU. */
  cpu_weights: "native" | "fp32" | "mlx" | null;
  /** How the model keeps its KV cache: kv_bits (null: full precision) and max_kv_size (null: unbounded). */
  kv_cache: {
    kv_bits: 4 | 8 | null;
    max_kv_size: number | null;
  };
  /** What the model serves: a vision model generates. */
  task?: "generate";
  /** Across a distributed group: how the model is split over the ranks (load_model's parallel). Absent on one machine. */
  parallel?: "tensor" | "pipeline" | "mlp";
};

/** Every model of the registry (the models file) and every loaded model, with its state, source, keep-alive and sizes. Answered at once; nothing is fetched. */
export type ModelsListParams = Record<string, never>;
export type ModelsListResult = {
  models: ({
    model_id: ModelId;
    /** In the models file (false: loaded by hand). */
    registered: boolean;
    aliases: ModelId[];
    source: {
      kind: "embedded" | "local" | "hub" | "unknown";
      name?: string;
      revision?: string;
    };
    state: "available" | "downloading" | "loading" | "warming" | "ready" | "unloading";
    pinned: boolean;
    /** "-1" (never unloaded for being idle) or seconds such as "300s"; null when the model is neither loaded nor given one in the file (the runtime's default applies when it loads on demand). */
    keep_alive: string | null;
    /** The draft its requests draft with (the models file's draft). */
    draft_model_id: string | null;
    /** Its files on disk here (null: not on this machine yet). */
    disk_bytes: number | null;
    /** MLX memory it took when loaded (null: not loaded). */
    memory_bytes: number | null;
    /** Seconds until its keep-alive unloads it (null: busy, never, or not loaded). */
    expires_in_s: number | null;
  })[];
  /** The models file's default model (its id), loaded at start. */
  default_model: string | null;
  /** The models file in use, or null. */
  models_file: string | null;
};

/** Score documents against a query with a reranker (task rerank: a Qwen3-Reranker-style decoder's yes/no logits, or a cross-encoder's classifier), most relevant first, in the Cohere/Jina result shape. Runs like embed: batched on the engine thread through the admission queue and breaker. docs/embeddings.md. */
export type RerankParams = {
  model_id: ModelId;
  query: string;
  documents: string[];
  /** Return only the best this many (default: all). */
  top_n?: number;
  /** Put each document's text in its result. */
  return_documents?: boolean;
  /** Decoder rerankers: the <Instruct> line (default: Qwen3-Reranker's web search instruction). */
  instruction?: string;
  /** A query-document input longer than the model takes: cut the document's end, or refuse it. */
  truncate?: "end" | "none";
  /** Order in the admission queue (shared with generation streams); first come first served within a priority. */
  priority?: "high" | "normal" | "low";
  /** Deadline for queue wait plus the forward passes; expiry answers -32009 with reason timeout. */
  timeout_ms?: number;
  /** How long its model stays loaded once idle after this request (replaces the model's). */
  keep_alive?: KeepAlive;
};
export type RerankResult = {
  model_id: ModelId;
  results: {
    index: number;
    relevance_score: number;
    document?: {
      text: string;
    };
  }[];
  truncated: number[];
  usage: {
    prompt_tokens: number;
    total_tokens: number;
  };
  batches: number;
};

/** Versions, backend, device, BLAS, capabilities and memory. */
export type RuntimeInfoParams = Record<string, never>;
export type RuntimeInfoResult = {
  version: string;
  protocol: "json-rpc-2.0";
  mlx_version: string;
  mlx_lm_version: string;
  backend: "cpu" | "metal" | "cuda";
  device: string;
  capabilities: string[];
  mlx_supported: boolean;
  /** The optional native module (docs/native.md): whether its CPU kernels serve quantized layers, and why not. */
  native: {
    available: boolean;
    reason: string;
    /** The MLX version it was built against. */
    version: string | null;
    /** The kernel in use: avx2 or scalar. */
    isa: string | null;
  };
  blas: {
    name: string;
    path: string | null;
    loaded: boolean;
    reason: string;
    threads: number | null;
  };
  memory: {
    /** Physical memory (bytes). */
    system_total: number;
    /** What a new allocation can still get without swapping (Linux MemAvailable); null where the system does not say. load_model refuses a model larger than this. */
    system_available: number | null;
    rss: number;
    vms: number;
    peak_rss: number;
    mlx_active: number;
    mlx_peak: number;
    mlx_cache: number;
  };
  pid: number;
  limits: Limits;
  /** Linux thermal zones and their temperature; empty where none is exposed (containers). macOS's thermal state needs the native probe, not built on this platform. */
  thermal: {
    zone: string;
    type: string;
    celsius: number;
  }[];
  /** The distributed group this runtime is rank 0 of (runtime --distributed, or mlx.launch); null on one machine. docs/distributed.md. */
  distributed: null | {
    /** ring, mpi, jaccl or any (as asked of mx.distributed.init) */
    backend: string;
    world_size: number;
    rank: number;
    /** Each rank's host and ring address (empty when mlx.launch started a backend without a ring hostfile). */
    hosts: {
      rank: number;
      host: string;
      address: string;
    }[];
    /** Seconds from starting the ranks to the group formed. */
    formed_s: number;
  };
};

/** Counters and histograms of the streams so far and gauges read now (see docs/metrics.md), as JSON or as Prometheus text exposition format 0.0.4. */
export type RuntimeMetricsParams = {
  /** json (default) or prometheus (text/plain; version=0.0.4). */
  format?: "json" | "prometheus";
};
export type RuntimeMetricsResult = {
  format: "json" | "prometheus";
  /** prometheus: the exposition's content type. */
  content_type?: "text/plain; version=0.0.4; charset=utf-8";
  /** prometheus: the exposition text (# HELP, # TYPE, samples; histograms as _bucket{le=...}, _sum, _count). */
  text?: string;
  /** json: each metric family by name. */
  metrics?: { [key: string]: {
    type: "counter" | "gauge" | "histogram";
    help: string;
    samples: {
      /** The sample's labels (e.g. finished_reason). */
      labels: { [key: string]: string };
      /** Counters and gauges. */
      value?: number;
      /** Histograms: observations. */
      count?: number;
      /** Histograms: the sum of the observations. */
      sum?: number;
      /** Histograms: cumulative counts per upper bound, the last one +Inf. */
      buckets?: {
        le: string;
        count: number;
      }[];
    }[];
  } };
  /** Where counters and histograms keep their numbers: the native module's cells (C++ atomics, updated with the GIL released) or the pure-Python ones; the output is the same. */
  cells: "native" | "python";
};

/** Loaded models, active streams and queues. */
export type RuntimeStateParams = Record<string, never>;
export type RuntimeStateResult = {
  loaded_models: ({
    model_id: ModelId;
    state: "ready" | "warming" | "loading" | "unloading";
    type: "text" | "vision" | "embedding" | "reranker";
    /** This model's cache of compiled structured-output grammars. */
    guides: {
      entries: number;
      capacity: number;
      hits: number;
      misses: number;
    };
    draft?: DraftPairing;
    /** This model's prefix cache (text models; vision models keep none). */
    prompt_cache: {
      entries: number;
      bytes: number;
      max_bytes: number;
      max_entries: number;
      hits: number;
      misses: number;
      hit_rate: number;
      tokens_reused: number;
      sessions: number;
    };
    /** The model's idle timer (Ollama's keep-alive). */
    keep_alive: {
      /** Seconds idle before it is unloaded; null: never. */
      keep_alive_s: number | null;
      active_streams: number;
      /** Seconds since its last stream ended (null while busy). */
      idle_s: number | null;
      /** Seconds until it is unloaded (null: busy, pinned or never). */
      expires_in_s: number | null;
      pinned: boolean;
    };
  })[];
  loading_models: string[];
  active_streams: number;
  streams: ({
    stream_id: StreamId;
    model_id: ModelId;
    state: "queued" | "prefilling" | "decoding";
    tokens_generated: number;
    /** The decode path the stream is on: solo (alone on its model, mlx-lm's generate_step), batch (the model's continuous batch), speculative (with a draft model) vision (mlx-vlm), or pooling (an embed or rerank job: its forward passes between decode steps). null while it waits in the queue. */
    path: "solo" | "batch" | "speculative" | "vision" | "pooling" | null;
    /** How many times the stream moved between decode paths (solo to batch, between two tokens). */
    handovers: number;
    age_ms: number;
  })[];
  queue_depth: number;
  outbound_queue: number;
  queue: {
    queued: number;
    active: number;
    queued_by_priority: {
      high: number;
      normal: number;
      low: number;
    };
    max_active: number;
    max_queued: number;
  };
  engine_calls_pending: number;
  breaker: {
    state: BreakerState;
    recent_faults: number;
    threshold: number;
    window_ms: number;
    cooldown_ms: number;
    retry_after_ms: number;
    probe_stream_id: string | null;
  };
  limits: Limits;
  streams_finished: number;
  restart_count: number;
  uptime_s: number;
  shutting_down: boolean;
  /** Loaded models that have passed their warm-up and are not being unloaded. */
  ready_models: ModelId[];
  /** The thermal guard (thermal_policy): the pressure read from the platform's thermal zones, and what it does to new streams. */
  thermal: {
    policy: "off" | "pace" | "pause";
    /** null when the policy is off (not read); unknown when the platform reports no thermal zone. */
    pressure: "nominal" | "serious" | "critical" | "unknown" | null;
    admissions: "open" | "paced" | "paused";
    hottest: {
      zone: string;
      type: string;
      celsius: number;
    } | {
      zone: string;
      type: string;
      celsius: number;
    };
    limit_c: number;
    /** Why admissions are paced or paused. */
    reason?: string | null;
  };
  /** The distributed group's health, rank by rank; null on one machine. A lost rank ends every stream with -32010 and generation is refused until the runtime restarts. */
  distributed: null | {
    state: "ok" | "lost";
    world_size: number;
    ranks: ({
      rank: number;
      host: string;
      pid: number | null;
      alive: boolean;
      /** Since its last heartbeat. */
      last_seen_ms: number;
      /** Why the rank was taken for lost: it exited, or it stopped answering. */
      lost?: string;
    })[];
    lost?: {
      rank: number | null;
      reason: string;
    };
  };
};

/** Forget a session's KV cache (its memory returns); delete_file also removes its saved file. */
export type SessionDropParams = {
  session_id: SessionId;
  delete_file?: boolean;
};
export type SessionDropResult = {
  session_id: SessionId;
  dropped: boolean;
  deleted_file: boolean;
};

/** Sessions in memory (per loaded model) and on disk. */
export type SessionListParams = Record<string, never>;
export type SessionListResult = {
  sessions: ({
    session_id: SessionId;
    model_id: string | null;
    tokens?: number;
    bytes?: number;
    file_bytes?: number;
    in_memory: boolean;
    on_disk: boolean;
  })[];
  cache_dir: string;
};

/** Restore a saved session (also after a restart) into its model's prompt cache. Refuses a file from another model or other weights, and a corrupt or truncated file. */
export type SessionLoadParams = {
  session_id: SessionId;
  model_id?: ModelId;
};
export type SessionLoadResult = {
  session_id: SessionId;
  model_id: ModelId;
  tokens: number;
};

/** Write a session's KV cache to the cache directory (safetensors, atomically: temp file then rename), tagged with the model id and a fingerprint of its weights and tokenizer. */
export type SessionSaveParams = {
  session_id: SessionId;
};
export type SessionSaveResult = {
  session_id: SessionId;
  model_id: ModelId;
  tokens: number;
  file_bytes: number;
};

/** Pair a loaded target with a loaded, compatible draft (or unpair it with null): its requests then draft with it unless they say otherwise. */
export type SetDraftParams = {
  model_id: ModelId;
  draft_model_id: string | null;
  /** Draft tokens proposed per round (default: the pairing's, else 3). */
  num_draft_tokens?: number;
};
export type SetDraftResult = {
  model_id: ModelId;
  draft_model_id: string | null;
  num_draft_tokens: number | null;
};

/** End or drain every stream, unload models, answer, exit 0. */
export type ShutdownParams = {
  /** Let active streams finish first. */
  drain?: boolean;
  timeout_ms?: number;
};
export type ShutdownResult = {
  success: true;
};

/** Token ids and token strings of a text. */
export type TokenizeParams = {
  model_id: ModelId;
  text: string;
  add_special_tokens?: boolean;
};
export type TokenizeResult = {
  tokens: number[];
  token_strings: string[];
};

/** Cancel the model's streams and free its memory. */
export type UnloadModelParams = {
  model_id: ModelId;
  force?: boolean;
};
export type UnloadModelResult = {
  success: true;
  model_id: ModelId;
  was_loaded: boolean;
  freed_bytes: number;
  mlx_active_bytes: number;
};

/** Load progress of a model; a hub download reports its bytes in stage "downloading". */
export type ModelProgressParams = {
  model_id: ModelId;
  stage: "resolving" | "downloading" | "loading" | "warming" | "ready" | "failed";
  /** Fraction done; while downloading, bytes_done / bytes_total. */
  progress: number;
  /** Bytes of the download on disk so far (resumed bytes included). */
  bytes_done?: number;
  /** Bytes of every file the download fetches. */
  bytes_total?: number;
  /** Transfer rate of this download so far. */
  rate_bytes_per_s?: number;
  /** Seconds left at that rate; null until a rate is known. */
  eta_s?: number | null;
  /** The file in transfer, relative to the repo. */
  file?: string;
};

/** The engine's circuit breaker changed state. */
export type RuntimeBreakerParams = {
  state: BreakerState;
  previous: BreakerState;
  reason: string;
  retry_after_ms: number;
};

/** Sent before a non-zero exit. */
export type RuntimeFatalParams = {
  /** A fault's own message, or "the engine thread failed"; the traceback goes to stderr only. */
  error: string;
  /** The failure's type (a fault name or the exception class). */
  error_type: string;
  error_code: number;
  exit_code: number;
};

/** Sent once, first, when runtime/info can be answered. */
export type RuntimeReadyParams = {
  version: string;
  protocol: "json-rpc-2.0";
  mlx_version: string;
  backend: "cpu" | "metal" | "cuda";
  device: string;
  capabilities: string[];
};

/** Coalesced tokens of one stream (the peer's batched shape). */
export type StreamChunkParams = {
  stream_id: StreamId;
  tokens: TokenEntry[];
  batch_size: number;
  is_batch: true;
};

/** Exactly one per stream, last. */
export type StreamEventParams = {
  stream_id: StreamId;
  event: "completed" | "error";
  is_final: true;
  finish_reason: FinishReason;
  /** Why the stream failed: a fault's own message, or a mapped one ("generation failed", "out of memory"); library text never appears here (the traceback goes to the runtime's stderr). */
  error?: string;
  /** The failure's type: a fault name (GenerationFailed, OutOfMemory, ...) or the exception class. */
  error_type?: string;
  /** The error code the same failure would have as a response (docs/errors.md). */
  error_code?: number;
  /** Streams with structured output: whether the output sent is whole (the grammar accepts it). False when max_tokens, a stop sequence, cancel or timeout cut it short. */
  guidance?: {
    mode: "json_schema" | "json_object" | "regex" | "choice" | "grammar" | "xml" | "tool_call";
    complete: boolean;
  };
  /** json_schema / json_object streams whose output is complete: the JSON value. */
  parsed?: unknown;
  /** Chat streams: the answer's whole text (thinking and tool calls apart). */
  content?: string;
  /** Chat streams: the whole thinking text. */
  reasoning?: string;
  /** Chat streams: the complete calls, arguments parsed (finish_reason tool_calls). */
  tool_calls?: ToolCall[];
  /** Chat streams: tool-call sections that did not parse. */
  tool_call_errors?: ToolCallError[];
  /** finish_reason stop because a stop sequence appeared: which one (the earliest in the text). */
  stop_sequence?: string;
};

/** Sent once before a completed stream.event. Times in seconds. */
export type StreamStatsParams = {
  stream_id: StreamId;
  tokens_generated: number;
  tokens_per_second: number;
  time_to_first_token: number;
  total_time: number;
  prompt_tokens: number;
  finish_reason: FinishReason;
  /** Speculative streams only. */
  draft?: {
    model_id: ModelId;
    num_draft_tokens: number;
    drafted: number;
    accepted: number;
    rejected: number;
    acceptance_rate: number;
  };
  /** Vision streams: images in the prompt (prompt_tokens counts their expanded image tokens). */
  images?: number;
  /** Prompt tokens served from the prompt cache (not prefilled). */
  cached_tokens: number;
  /** Prompt tokens prefilled: prompt_tokens - cached_tokens. */
  prefill_tokens: number;
  /** The decode path the stream ended on (runtime/state shows it while it runs). Absent for a stream that ended before it started (cancelled or timed out in the queue). */
  path?: "solo" | "batch" | "speculative" | "vision";
  /** How many times the stream moved between decode paths (solo to batch, between two tokens). */
  handovers?: number;
  /** Bytes its KV cache held at the end (streams decoded solo; smaller with kv_bits, bounded with max_kv_size). */
  kv_cache_bytes?: number;
  usage?: Usage;
};

export interface Methods {
  "batch_check_draft": { params: BatchCheckDraftParams; result: BatchCheckDraftResult };
  "batch_generate": { params: BatchGenerateParams; result: BatchGenerateResult };
  "batch_tokenize": { params: BatchTokenizeParams; result: BatchTokenizeResult };
  "cancel": { params: CancelParams; result: CancelResult };
  "check_draft": { params: CheckDraftParams; result: CheckDraftResult };
  "count_tokens": { params: CountTokensParams; result: CountTokensResult };
  "detokenize": { params: DetokenizeParams; result: DetokenizeResult };
  "$/cancelRequest": { params: CancelRequestParams; result: CancelRequestResult };
  "embed": { params: EmbedParams; result: EmbedResult };
  "generate": { params: GenerateParams; result: GenerateResult };
  "generate_with_image": { params: GenerateWithImageParams; result: GenerateWithImageResult };
  "load_model": { params: LoadModelParams; result: LoadModelResult };
  "load_vision_model": { params: LoadVisionModelParams; result: LoadVisionModelResult };
  "models/list": { params: ModelsListParams; result: ModelsListResult };
  "rerank": { params: RerankParams; result: RerankResult };
  "runtime/info": { params: RuntimeInfoParams; result: RuntimeInfoResult };
  "runtime/metrics": { params: RuntimeMetricsParams; result: RuntimeMetricsResult };
  "runtime/state": { params: RuntimeStateParams; result: RuntimeStateResult };
  "session/drop": { params: SessionDropParams; result: SessionDropResult };
  "session/list": { params: SessionListParams; result: SessionListResult };
  "session/load": { params: SessionLoadParams; result: SessionLoadResult };
  "session/save": { params: SessionSaveParams; result: SessionSaveResult };
  "set_draft": { params: SetDraftParams; result: SetDraftResult };
  "shutdown": { params: ShutdownParams; result: ShutdownResult };
  "tokenize": { params: TokenizeParams; result: TokenizeResult };
  "unload_model": { params: UnloadModelParams; result: UnloadModelResult };
}

export interface Notifications {
  "model.progress": ModelProgressParams;
  "runtime/breaker": RuntimeBreakerParams;
  "runtime/fatal": RuntimeFatalParams;
  "runtime/ready": RuntimeReadyParams;
  "stream.chunk": StreamChunkParams;
  "stream.event": StreamEventParams;
  "stream.stats": StreamStatsParams;
}

/** Host-side contract: the environment variables a host binding passes to the runtime it spawns (a trailing * matches a prefix); everything else stays in the host. */
export const HOST_ENV_ALLOW_LIST: readonly string[] = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "VIRTUAL_ENV", "RUNTIME_*", "OPENBLAS_*"];

export const ERROR_CODES = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  ShuttingDown: -32000,
  ModelLoadFailed: -32001,
  GenerationFailed: -32002,
  TokenizerError: -32003,
  GuidanceError: -32004,
  ModelNotLoaded: -32005,
  Busy: -32006,
  CircuitOpen: -32007,
  OutOfMemory: -32008,
  RequestCancelled: -32009,
  GroupLost: -32010,
  NotSupported: -32011,
} as const;
