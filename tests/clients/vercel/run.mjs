// One scenario of the Vercel AI SDK against a served agent, for tests/clients/test_vercel_ai_sdk.py.
//
//   node run.mjs <scenario> <base URL> <chat|responses> <model>
//
// Prints one JSON object on stdout: what a user of the SDK gets back (text, streamed deltas,
// finish reasons, usage per step and in total, tool calls and results, the parsed object,
// the error thrown), for the Python side to assert on. An error of the SDK is part of that
// result, not a crash; the exit code is 2 only for a misused command line.
//
// Scenarios: generate, stream (a plain answer); generate-tool, stream-tool (with the
// client's get_local_time tool, run by the SDK in a multi-step run); generate-object (a
// structured answer, Output.object); conversation (two turns, the second sending the first's
// response.messages back, as the SDK's docs show).

import { createOpenAI } from '@ai-sdk/openai';
import { APICallError, generateText, Output, stepCountIs, streamText, tool } from 'ai';
import { z } from 'zod';

// Warnings about settings a provider ignores would print on stdout, among the JSON.
globalThis.AI_SDK_LOG_WARNINGS = false;

const PROMPTS = {
  generate: 'Hello',
  stream: 'Hello',
  'generate-tool': 'What time is it in UTC?',
  'stream-tool': 'What time is it in UTC?',
  'generate-object': 'The largest city of Norway?',
  conversation: 'Hello',
};

const [scenario, baseURL, api, modelId] = process.argv.slice(2);
if (!Object.hasOwn(PROMPTS, scenario) || !baseURL || !['chat', 'responses'].includes(api) || !modelId) {
  process.stderr.write(`usage: node run.mjs <${Object.keys(PROMPTS).join('|')}> <base URL> <chat|responses> <model>\n`);
  process.exit(2);
}

const provider = createOpenAI({ baseURL, apiKey: 'unused' });
const model = api === 'chat' ? provider.chat(modelId) : provider.responses(modelId);

// The client's tool: the SDK runs it and sends its result back in the next step.
const executions = [];
const getLocalTime = tool({
  description: 'The local time in a time zone (runs on the client).',
  inputSchema: z.object({ tz: z.string().describe('an IANA time zone') }),
  execute: async ({ tz }) => {
    executions.push({ tz });
    return `12:00 in ${tz}`;
  },
});

const City = z.object({ name: z.string(), population: z.number().int() });

const options = {
  model,
  prompt: PROMPTS[scenario],
  maxRetries: 0, // a failure is reported as it is, not wrapped in a RetryError
  ...(scenario.endsWith('-tool') ? { tools: { get_local_time: getLocalTime }, stopWhen: stepCountIs(5) } : {}),
  ...(scenario === 'generate-object' ? { output: Output.object({ schema: City }) } : {}),
};

function usage(u) {
  return u && { inputTokens: u.inputTokens, outputTokens: u.outputTokens, totalTokens: u.totalTokens };
}

function step(s) {
  return {
    text: s.text,
    finishReason: s.finishReason,
    usage: usage(s.usage),
    toolCalls: s.toolCalls.map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })),
    toolResults: s.toolResults.map((r) => ({ toolCallId: r.toolCallId, toolName: r.toolName, output: r.output })),
  };
}

function error(e) {
  if (e == null) return null;
  return {
    name: e.name,
    message: e.message,
    isAPICallError: APICallError.isInstance(e),
    statusCode: e.statusCode,
    responseBody: e.responseBody,
    url: e.url,
  };
}

async function generate() {
  const result = await generateText(options);
  return {
    text: result.text,
    finishReason: result.finishReason,
    usage: usage(result.usage),
    totalUsage: usage(result.totalUsage),
    steps: result.steps.map(step),
    object: scenario === 'generate-object' ? result.output : undefined,
    responseModel: result.response.modelId,
  };
}

async function stream() {
  // Errors are read from the stream's error parts (onError would print them).
  const result = streamText({ ...options, onError: () => {} });
  const out = { deltas: [], parts: [], errors: [], finish: null };
  for await (const part of result.fullStream) {
    out.parts.push(part.type);
    if (part.type === 'text-delta') out.deltas.push(part.text);
    if (part.type === 'error') out.errors.push(error(part.error));
    if (part.type === 'finish') out.finish = { finishReason: part.finishReason, totalUsage: usage(part.totalUsage) };
  }
  try {
    Object.assign(out, {
      text: await result.text,
      finishReason: await result.finishReason,
      usage: usage(await result.usage),
      totalUsage: usage(await result.totalUsage),
      steps: (await result.steps).map(step),
      responseModel: (await result.response).modelId,
    });
  } catch (e) {
    out.error = error(e); // no step finished: the SDK's NoOutputGeneratedError
  }
  return out;
}

async function conversation() {
  const { prompt, ...rest } = options;
  const messages = [{ role: 'user', content: prompt }];
  const first = await generateText({ ...rest, messages });
  messages.push(...first.response.messages, { role: 'user', content: 'And then?' });
  const second = await generateText({ ...rest, messages });
  return { turns: [first.text, second.text], usage: usage(second.usage) };
}

const RUNS = {
  generate,
  stream,
  'generate-tool': generate,
  'stream-tool': stream,
  'generate-object': generate,
  conversation,
};

let result;
try {
  result = await RUNS[scenario]();
} catch (e) {
  result = { error: error(e) };
}
result.executions = executions;
process.stdout.write(JSON.stringify(result) + '\n');
