"""A bounded property-based pass over the facade's whole OpenAPI schema (schemathesis), shared by the contract
test and ``recstack bench chaos``.

Every default check runs (no 5xx, status, content type and body as declared) except ``positive_data_acceptance``:
unknown ids and categories are refused by meaning (404, or 422 naming them), and batches are validated entry by
entry, so their body is declared free-form and a schema-valid request may rightly be refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FUZZ_SEED = 12345


@dataclass
class FuzzResult:
    statuses: dict[int, int] = field(default_factory=dict)  # answers per status
    failures: list[str] = field(default_factory=list)  # each failed check, with the request that failed it

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())

    def to_json(self) -> dict:
        return {"cases": self.cases, "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "server_errors_5xx": sum(v for k, v in self.statuses.items() if k >= 500),
                "failures": self.failures}


def fuzz_schema(url: str, headers: dict[str, str], examples: int, seed: int = FUZZ_SEED) -> FuzzResult:
    """``examples`` generated requests over every operation of the schema at ``url``; failures are collected,
    not raised, so one run reports all of them."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import seed as fix_seed
    from hypothesis import settings as hypothesis_settings
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers)
    result = FuzzResult()

    @fix_seed(seed)
    @hypothesis_settings(max_examples=examples, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy())
    def call(case):
        response = case.call(base_url=url, headers=headers)
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance])
        except FailureGroup as exc:  # the checks that failed, each with how to reproduce it
            result.failures.append(f"{case.method} {case.formatted_path}: {exc}"[:2000])

    call()
    return result
