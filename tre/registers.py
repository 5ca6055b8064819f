"""The registers: what each source delivers, column by column.

This is the contract between the ones who deliver (and `tre synth`, which imitates them), the
ingest that validates deliveries, and the approvals that grant variables per source. A column
has a type, whether it is required, a code list or shape, and a *role*:

- `identity`: the person's ID number. Split off at ingest into the encrypted vault; never
  stored with health data.
- `key`: the record's own id from the reporter (claim id, episode id ...).
- `admin`: administrative data — identity-free facts about the contact: when, what type,
  which provider, which municipality. Kept under a registration opt-out (§ 2-2 first paragraph).
- `health`: non-administrative data. For sources under the § 2-2 registration opt-out (school
  health / health centre, maternity care, dental care) not stored for a person who had an
  active registration opt-out at the time of the event.

Deliveries are files `<source>-<period>.csv|parquet`, each beside a manifest
`<source>-<period>.manifest.json` (see `Manifest`).
"""

from __future__ import annotations

import csv
import functools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tre.config import PACKAGE_DIR

SCHEMA_VERSION = 1

# --- code lists ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Municipality:
    number: str  # four digits, "0301"
    name: str
    population: int  # on 1 January 2024


@functools.cache
def municipalities() -> tuple[Municipality, ...]:
    """The 357 municipalities of 2024 (Statistics Norway's figures; see tre/data/README.md)."""
    with open(PACKAGE_DIR / "data" / "kommuner-2024.csv", encoding="utf-8", newline="") as f:
        return tuple(
            Municipality(row["kommunenummer"], row["kommunenavn"], int(row["folketall"])) for row in csv.DictReader(f)
        )


@functools.cache
def municipality_numbers() -> frozenset[str]:
    return frozenset(m.number for m in municipalities())


# Shapes: ICPC-2 is a chapter letter and two digits (K86); ICD-10 a letter, two digits and
# up to two more characters, written without the dot as NPR does (E119).
ICPC2 = re.compile(r"^[ABDFHKLNPRSTUWXYZ][0-9]{2}$")
ICD10 = re.compile(r"^[A-Z][0-9]{2}[0-9A-Z]{0,2}$")

CODE_LISTS: dict[str, tuple[str, ...]] = {
    "sex": ("M", "K"),
    "marital_status": ("ugift", "gift", "skilt", "separert", "enke", "partner"),
    "provider_type": ("fastlege", "legevakt", "fysioterapeut", "tannlege", "kiropraktor", "psykolog"),
    "kuhr_contact_type": ("konsultasjon", "e-konsultasjon", "sykebesok", "telefon"),
    "iplos_service": (
        "hjemmesykepleie",
        "praktisk_bistand",
        "sykehjem_langtid",
        "sykehjem_korttid",
        "trygghetsalarm",
        "dagtilbud",
        "matombringing",
        "omsorgslonn",
    ),
    "iplos_score": ("1", "2", "3", "4", "5", "9"),  # 9: not relevant
    "npr_care_level": ("dognopphold", "dagbehandling", "poliklinikk"),
    "npr_specialty": ("indremedisin", "kirurgi", "ortopedi", "nevrologi", "psykiatri", "pediatri", "gynekologi"),
    "education": ("grunnskole", "videregaende", "hoyere_kort", "hoyere_lang", "ukjent"),
    "employment": ("ansatt", "arbeidsledig", "student", "pensjonist", "ufor", "annet"),
    "school_health_service": ("helsestasjon", "skolehelsetjeneste"),
    "contact_type": ("konsultasjon", "telefon", "hjemmebesok", "gruppe"),
    "reservation_kind": ("registration", "release_with_fnr"),
    "reservation_action": ("activate", "deactivate"),
    "idhistory_reason": ("d_to_fnr", "fnr_change"),
}

# --- schema -------------------------------------------------------------------------------

TYPES = ("VARCHAR", "DATE", "TIMESTAMP", "INTEGER", "DOUBLE", "BOOLEAN")
ROLES = ("identity", "key", "admin", "health")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    role: str
    required: bool = True
    codes: str | None = None  # a CODE_LISTS name, "municipality", "icpc2" or "icd10"
    minimum: float | None = None  # numbers only: smallest allowed value
    maximum: float | None = None
    description: str = ""

    def __post_init__(self):
        if self.type not in TYPES or self.role not in ROLES:
            raise ValueError(f"column {self.name}: unknown type {self.type} or role {self.role}")


def _c(name, type, role, description, **kw) -> Column:
    return Column(name=name, type=type, role=role, description=description, **kw)


FNR = _c("fnr", "VARCHAR", "identity", "national ID number (FNR or D-number)")
MUNICIPALITY = _c("municipality", "VARCHAR", "admin", "municipality number of residence", codes="municipality")


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    columns: tuple[Column, ...]
    event_date: str | None  # the column that dates the event (opt-out status, after-death checks)
    key: str | None  # the record id column
    registration_opt_out: bool = False  # § 2-2 first paragraph applies
    consent_based: bool = False  # rows may be used only for persons who consented (§ 4-2)
    central_only: bool = False  # never released to a project as rows (key tables, messages)
    description: str = ""
    # (earlier, later): pairs of date columns of one row where the later must not come first
    date_order: tuple[tuple[str, str], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def variables(self) -> tuple[str, ...]:
        """What an approval can grant: every column but the identity."""
        return tuple(c.name for c in self.columns if c.role != "identity")


IPLOS_SCORES = tuple(
    _c(f"f_{name}", "VARCHAR", "health", f"IPLOS functional ability: {text} (1-5, 9 not relevant)", codes="iplos_score")
    for name, text in (
        ("housework", "ordinary housework"),
        ("shopping", "shopping"),
        ("cooking", "cooking"),
        ("personal_hygiene", "personal hygiene"),
        ("dressing", "dressing"),
        ("eating", "eating"),
        ("toilet", "using the toilet"),
        ("mobility_indoor", "moving about indoors"),
        ("mobility_outdoor", "moving about outdoors"),
        ("memory", "memory"),
        ("communication", "communication"),
        ("own_health", "managing own health"),
    )
)


def opt_out_contacts(name, title, provider, admin: tuple[Column, ...], health: tuple[Column, ...]) -> Source:
    """A contact source under the § 2-2 registration opt-out: the administrative fields every
    such contact has (who, when, which unit, what type), then its own."""
    return Source(
        name,
        title,
        (
            _c("contact_id", "VARCHAR", "key", "contact id"),
            FNR,
            _c("contact_date", "DATE", "admin", "date of contact"),
            *admin,
            _c("provider_id", "VARCHAR", "admin", provider),
            MUNICIPALITY,
            _c("contact_type", "VARCHAR", "admin", "type of contact", codes="contact_type"),
            *health,
        ),
        event_date="contact_date",
        key="contact_id",
        registration_opt_out=True,
    )


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "dsf",
            "Central Population Register (Folkeregisteret)",
            (
                FNR,
                _c("birth_date", "DATE", "admin", "date of birth"),
                _c("sex", "VARCHAR", "admin", "M or K", codes="sex"),
                MUNICIPALITY,
                _c("marital_status", "VARCHAR", "admin", "marital status", codes="marital_status"),
                _c("immigration_date", "DATE", "admin", "date of immigration", required=False),
                _c("emigration_date", "DATE", "admin", "date of emigration", required=False),
                _c("death_date", "DATE", "admin", "date of death", required=False),
            ),
            event_date=None,
            key=None,
            description="one row per person registered at some time in the period",
            date_order=(
                ("birth_date", "death_date"),
                ("birth_date", "emigration_date"),
                ("birth_date", "immigration_date"),
            ),
        ),
        Source(
            "dsf_idhistory",
            "ID-number history from the population register",
            (
                _c("old_id", "VARCHAR", "identity", "the earlier ID number (a D-number or a replaced FNR)"),
                _c("new_id", "VARCHAR", "identity", "the number that replaced it"),
                _c("change_date", "DATE", "admin", "when it changed"),
                _c("reason", "VARCHAR", "admin", "d_to_fnr or fnr_change", codes="idhistory_reason"),
            ),
            event_date="change_date",
            key=None,
            central_only=True,
        ),
        Source(
            "kuhr",
            "KUHR: reimbursement claims from GPs, emergency clinics, physiotherapists, dentists",
            (
                _c("claim_id", "VARCHAR", "key", "claim id from the reporter"),
                FNR,
                _c("contact_time", "TIMESTAMP", "admin", "date and time of the contact"),
                _c("provider_type", "VARCHAR", "admin", "kind of provider", codes="provider_type"),
                _c("provider_id", "VARCHAR", "admin", "the practice or clinic"),
                MUNICIPALITY,
                _c("contact_type", "VARCHAR", "admin", "contact type from the tariff codes", codes="kuhr_contact_type"),
                _c("tariff_codes", "VARCHAR", "admin", "tariff codes claimed, space-separated"),
                _c("icpc2", "VARCHAR", "health", "ICPC-2 diagnosis", codes="icpc2"),
                _c("refund_nok", "DOUBLE", "admin", "refund claimed in NOK", minimum=0),
            ),
            event_date="contact_time",
            key="claim_id",
        ),
        Source(
            "iplos",
            "IPLOS: municipal care service decisions and functional ability",
            (
                _c("decision_id", "VARCHAR", "key", "decision id"),
                FNR,
                MUNICIPALITY,
                _c("service", "VARCHAR", "admin", "the service decided", codes="iplos_service"),
                _c("start_date", "DATE", "admin", "first day of the service"),
                _c("end_date", "DATE", "admin", "last day of the service", required=False),
                _c(
                    "hours_per_week",
                    "DOUBLE",
                    "admin",
                    "hours per week decided",
                    required=False,
                    minimum=0,
                    maximum=168,
                ),
                *IPLOS_SCORES,
            ),
            event_date="start_date",
            key="decision_id",
            date_order=(("start_date", "end_date"),),
        ),
        Source(
            "npr",
            "NPR: specialist health care episodes",
            (
                _c("episode_id", "VARCHAR", "key", "episode id"),
                FNR,
                _c("hospital", "VARCHAR", "admin", "health trust / hospital"),
                _c("specialty", "VARCHAR", "admin", "specialty", codes="npr_specialty"),
                _c("care_level", "VARCHAR", "admin", "inpatient, day or outpatient", codes="npr_care_level"),
                _c("admission_date", "DATE", "admin", "admission or visit date"),
                _c("discharge_date", "DATE", "admin", "discharge date", required=False),
                _c("icd10_main", "VARCHAR", "health", "main diagnosis, ICD-10", codes="icd10"),
                _c(
                    "icd10_secondary", "VARCHAR", "health", "secondary diagnosis, ICD-10", required=False, codes="icd10"
                ),
            ),
            event_date="admission_date",
            key="episode_id",
            date_order=(("admission_date", "discharge_date"),),
        ),
        Source(
            "ses",
            "Socioeconomic data: education, income, employment",
            (
                FNR,
                _c("year", "INTEGER", "admin", "the year the data describe", minimum=1900, maximum=2100),
                _c("education", "VARCHAR", "health", "highest completed education", codes="education"),
                _c("income_decile", "INTEGER", "health", "household income decile", minimum=1, maximum=10),
                _c("employment", "VARCHAR", "health", "main activity", codes="employment"),
            ),
            event_date=None,
            key=None,
        ),
        opt_out_contacts(
            "helsestasjon",
            "Health-centre and school health service contacts",
            "the service unit",
            (_c("service", "VARCHAR", "admin", "health centre or school health", codes="school_health_service"),),
            (
                _c("reason", "VARCHAR", "health", "reason for contact, ICPC-2", required=False, codes="icpc2"),
                _c("weight_kg", "DOUBLE", "health", "weight", required=False, minimum=0, maximum=300),
                _c("height_cm", "DOUBLE", "health", "height", required=False, minimum=0, maximum=250),
            ),
        ),
        opt_out_contacts(
            "svangerskap",
            "Pregnancy and maternity care contacts",
            "the service unit",
            (),
            (
                _c("gestational_week", "INTEGER", "health", "week of pregnancy", required=False, minimum=0, maximum=45),
                _c(
                    "systolic_bp",
                    "INTEGER",
                    "health",
                    "systolic blood pressure",
                    required=False,
                    minimum=40,
                    maximum=260,
                ),
                _c(
                    "diastolic_bp",
                    "INTEGER",
                    "health",
                    "diastolic blood pressure",
                    required=False,
                    minimum=20,
                    maximum=180,
                ),
            ),
        ),
        opt_out_contacts(
            "tannhelse",
            "Public dental service contacts",
            "the clinic",
            (),
            (
                _c(
                    "dmft", "INTEGER", "health", "decayed, missing, filled teeth", required=False, minimum=0, maximum=32
                ),
                _c("new_caries", "INTEGER", "health", "new caries lesions", required=False, minimum=0, maximum=32),
            ),
        ),
        Source(
            "reservasjon",
            "Reservation messages: registration opt-out and release-with-FNR opt-out (§ 2-2)",
            (
                _c("message_id", "VARCHAR", "key", "message id"),
                FNR,
                _c("kind", "VARCHAR", "admin", "registration or release_with_fnr", codes="reservation_kind"),
                _c("action", "VARCHAR", "admin", "activate or deactivate", codes="reservation_action"),
                _c("effective_time", "TIMESTAMP", "admin", "when the reservation takes or ends its effect"),
            ),
            event_date="effective_time",
            key="message_id",
            central_only=True,
        ),
        Source(
            "kvalitetsregister",
            "A consent-based quality register (diabetes) sample",
            (
                _c("record_id", "VARCHAR", "key", "record id"),
                FNR,
                _c("registered_date", "DATE", "admin", "date of registration"),
                _c("consent", "BOOLEAN", "admin", "the person consented to registration and linkage"),
                _c("consent_withdrawn_date", "DATE", "admin", "when consent was withdrawn", required=False),
                _c("diagnosis", "VARCHAR", "health", "diagnosis, ICD-10", codes="icd10"),
                _c("hba1c", "DOUBLE", "health", "HbA1c, mmol/mol", required=False, minimum=0, maximum=250),
            ),
            event_date="registered_date",
            key="record_id",
            consent_based=True,
        ),
        Source(
            "iplos_historisk",
            "Historic pseudonymous IPLOS 2006-2016 (§ 6-1): keyed by the old pseudonym",
            (
                _c("old_pseudonym", "VARCHAR", "key", "the historic IPLOS pseudonym"),
                _c("year", "INTEGER", "admin", "the year", minimum=2006, maximum=2016),
                MUNICIPALITY,
                _c("service", "VARCHAR", "admin", "the service", codes="iplos_service"),
                _c("hours_per_week", "DOUBLE", "admin", "hours per week", required=False, minimum=0, maximum=168),
                *IPLOS_SCORES[:6],
            ),
            event_date=None,
            key=None,
            description="linked by pseudonym only, through iplos_historisk_nokkel, never by ID number",
        ),
        Source(
            "iplos_historisk_nokkel",
            "Key table of the historic IPLOS pseudonyms (§ 6-1): pseudonym → ID number",
            (
                _c("old_pseudonym", "VARCHAR", "key", "the historic IPLOS pseudonym"),
                FNR,
            ),
            event_date=None,
            key="old_pseudonym",
            central_only=True,
        ),
    )
}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}") from None


# --- manifests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What a delivery says about itself, in `<source>-<period>.manifest.json`."""

    source: str
    period: str  # "2023" for a year
    file: str  # the data file's name, beside the manifest
    format: str  # "csv" or "parquet"
    rows: int  # data rows (header not counted)
    sha256: str  # of the data file's bytes
    encoding: str = "utf-8"  # csv only: "utf-8" or "latin-1"
    schema_version: int = SCHEMA_VERSION
    producer: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def parse(cls, text: str) -> Manifest:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a manifest is a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown manifest field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def manifest_path(data_file: Path) -> Path:
    """`kuhr-2023.csv` → `kuhr-2023.manifest.json`."""
    data_file = Path(data_file)
    return data_file.with_name(data_file.name.split(".")[0] + ".manifest.json")
