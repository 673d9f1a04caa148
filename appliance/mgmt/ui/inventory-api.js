// @ts-check
// The asset inventory's and learn mode's routes as the Assets, Map and Learn views call them. The
// one place that knows their answers' envelopes ({ assets }, { asset, conversations },
// { conversations }, { pairs }); views get plain records. Must not render or keep state.

/** @typedef {import('./api-types').Asset} Asset */
/** @typedef {import('./api-types').Conversation} Conversation */
/** @typedef {import('./api-types').LearnStatus} LearnStatus */
/** @typedef {import('./app.js').ViewContext['api']} Api */

/**
 * Drop empty values so the query says only what was asked.
 * @param {Record<string, string | number | undefined>} filter
 */
function query(filter) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) if (value !== undefined && value !== '') params.set(key, String(value));
  return params.toString();
}

/**
 * GET /assets (filters: pair, q, side, liveness, limit).
 * @param {Api} api
 * @param {{ pair?: string, q?: string, side?: string, liveness?: string, limit?: number }} filter
 * @returns {Promise<Asset[]>}
 */
export async function listAssets(api, filter) {
  return (await api('GET', `/assets?${query(filter)}`)).assets;
}

/**
 * GET /assets/:id: the asset and its conversations.
 * @param {Api} api
 * @param {number} id
 * @returns {Promise<{ asset: Asset, conversations: Conversation[] }>}
 */
export async function getAsset(api, id) {
  const answer = await api('GET', `/assets/${id}`);
  return { asset: answer.asset, conversations: answer.conversations };
}

/**
 * GET /conversations (filters: pair, asset, address, verdict, since, limit).
 * @param {Api} api
 * @param {{ pair?: string, asset?: number, address?: string, verdict?: string, since?: number, limit?: number }} filter
 * @returns {Promise<Conversation[]>}
 */
export async function listConversations(api, filter) {
  return (await api('GET', `/conversations?${query(filter)}`)).conversations;
}

/**
 * GET /learn: one status per known pair.
 * @param {Api} api
 * @returns {Promise<LearnStatus[]>}
 */
export async function learnStatus(api) {
  return (await api('GET', '/learn')).pairs;
}
