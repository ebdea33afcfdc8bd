"""The JSON bodies of the server's requests and responses (pydantic models: they validate
the requests and make the OpenAPI schema at /openapi.json).

A request's limits depend on the model and on --max-length (a text's length, `k` up to
the vocabulary's size), so the request models are made per application by
request_models(); the responses are the same for every model.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

#: limits of the requests' settings (besides --max-length)
MAX_SUGGEST_K, MAX_SUGGEST_CHARS, MAX_BEAM, MAX_STOPS = 32, 128, 64, 16


# ---- responses ---------------------------------------------------------------------------
class ErrorBody(BaseModel):
    error: str = Field(description="one line naming the problem")


class CharProb(BaseModel):
    char: str
    prob: float


class NextResponse(BaseModel):
    next: List[CharProb]


class SuggestionItem(BaseModel):
    word: str
    completion: str
    log_prob: float


class SuggestResponse(BaseModel):
    suggestions: List[SuggestionItem]
    next: Optional[List[CharProb]] = Field(
        None, description="the next character's distribution, when asked for with `next`")


class CompleteResponse(BaseModel):
    completion: str
    log_prob: float


class SampleResponse(BaseModel):
    text: str


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    cell: str
    num_layers: int
    hidden_size: int
    vocab_size: int
    dtype: str
    parameters: int
    vocab: str = Field(description="the characters the model knows, in vocabulary order")
    max_length: int = Field(description="the longest text or prime a request may send")
    start_text: str = Field(description="what an empty text is read as")


class CacheStats(BaseModel):
    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int
    evictions: int
    chars_fed: int = Field(description="characters the server fed to the model")
    chars_reused: int = Field(description="characters it did not feed: cached prefixes")
    every: int = Field(description="a state is kept every this many characters of a text")


class QueueStats(BaseModel):
    in_flight: int = Field(description="model requests admitted and not yet answered")
    max_queue: int
    refused_busy: int = Field(description="requests refused with 429 since the start")


class LongLaneStats(BaseModel):
    queued: int
    running: int


class Stats(BaseModel):
    state_cache: CacheStats
    queue: QueueStats
    rounds: int
    answered: Dict[str, int]
    queued: int
    feeding: int
    sampling: int
    long_lane: LongLaneStats
    last_rounds_mean_size: float


#: the error responses every model endpoint may give
ERRORS = {400: {"model": ErrorBody, "description": "malformed JSON"},
          401: {"model": ErrorBody, "description": "no valid API key (when one is set)"},
          413: {"model": ErrorBody, "description": "body over 64 KiB"},
          422: {"model": ErrorBody, "description": "invalid request"},
          429: {"model": ErrorBody, "description": "the server is busy (--max-queue): "
                "retry after the seconds of the Retry-After header"},
          503: {"model": ErrorBody, "description": "the server is stopping"}}

STREAMED = {200: {"description": "the text; with \"stream\": true, Server-Sent Events: "
                  "`data: {\"text\": piece}` as it is generated, then `event: done` (or "
                  "`event: error` with {\"error\"} if the server stops)",
                  "content": {"text/event-stream": {"schema": {
                      "type": "object", "properties": {"text": {"type": "string"}}}}}}}


# ---- requests ----------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass
class RequestModels:
    next: type
    suggest: type
    complete: type
    sample: type


def request_models(n_vocab, max_length):
    """The request bodies for a model of n_vocab characters served with max_length."""
    V = n_vocab

    class TextRequest(Strict):
        text: str = Field(max_length=max_length, description="the text typed so far")
        skip_unknown: bool = Field(False, description="drop characters the model has "
                                   "never seen (else they are an error)")

    class NextRequest(TextRequest):
        k: int = Field(10, ge=1, le=V, description="how many characters, most likely first")

    class SuggestRequest(TextRequest):
        k: int = Field(3, ge=1, le=MAX_SUGGEST_K, description="how many suggestions")
        max_chars: int = Field(32, ge=0, le=min(MAX_SUGGEST_CHARS, max_length),
                               description="longest completion, in characters")
        beam: int = Field(16, ge=1, le=MAX_BEAM, description="beam width of the search")
        next: int = Field(0, ge=0, le=V, description="also the next character's "
                          "distribution, its this many most likely (0: not)")

    class CompleteRequest(Strict):
        prime: str = Field(min_length=1, max_length=max_length, description="text to complete")
        length: int = Field(ge=1, le=max_length, description="characters to add")
        beam: int = Field(1, ge=1, le=MAX_BEAM, description="beam width (1: greedy)")
        skip_unknown: bool = False

    class SampleRequest(Strict):
        prime: str = Field("", max_length=max_length, description="text to start from")
        length: int = Field(200, ge=1, le=max_length, description="characters to generate")
        temperature: float = Field(1.0, gt=0, le=100, allow_inf_nan=False)
        top_k: Optional[int] = Field(None, ge=1, le=1 << 31)
        top_p: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)
        seed: Optional[int] = Field(None, ge=0, le=(1 << 63) - 1)
        stop: Union[None, str, List[str]] = Field(
            None, description=f"a text, or up to {MAX_STOPS}; the sample ends right after "
            "the first to appear")
        stream: bool = Field(False, description="send the text as Server-Sent Events as "
                             "it is generated")
        skip_unknown: bool = False

    return RequestModels(NextRequest, SuggestRequest, CompleteRequest, SampleRequest)
