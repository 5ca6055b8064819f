"""The realism assumptions behind the synthetic registers, as data.

Every rate, share and code frequency the generator uses is here, with where it comes from.
Figures quoted from DOMAIN.md (national scale) are targets the generator is calibrated to;
the rest are rounded approximations of public statistics (Statistics Norway, the Directorate
of Health, the Medical Association's tariff) good enough for testing software, not for
research. docs/synth.md explains them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- demography -----------------------------------------------------------------------------

# Five-year age groups on 1 January 2024 (0-4, 5-9, ..., 100-104): population in thousands and
# the male share. Rounded approximations of Statistics Norway's population by age and sex;
# the total (5.54 M) matches DOMAIN.md's 5 550 203 within 0.2 %.
AGE_GROUP_POPULATION = np.array(
    [272, 300, 322, 330, 352, 372, 388, 376, 362, 370, 376, 360, 322, 290, 272, 222, 135, 75, 35, 10, 1.2]
)
AGE_GROUP_MALE_SHARE = np.array(
    [0.513, 0.513, 0.513, 0.515, 0.515, 0.52, 0.52, 0.52, 0.515, 0.51, 0.51, 0.505, 0.50]
    + [0.49, 0.48, 0.47, 0.44, 0.38, 0.30, 0.22, 0.15]
)

# Deaths: a Gompertz curve, q(age) = q80 * exp(0.12 * (age - 80)), capped at 0.6, with an
# infant floor. With the age structure above this gives 0.80 % deaths a year (Norway: about
# 43 000 of 5.5 M) at a mean age of about 81; most deaths are at 80+.
MORTALITY_Q80 = {"M": 0.052, "K": 0.037}
MORTALITY_SLOPE = 0.12
MORTALITY_INFANT = 0.002
MORTALITY_CAP = 0.6

BIRTHS_PER_PERSON_YEAR = 0.0094  # 51 980 births in 2023 / 5.5 M
MALE_SHARE_AT_BIRTH = 0.513
IMMIGRATION_PER_PERSON_YEAR = 0.010  # around 55 000 a year in ordinary years
# Ages of new immigrants: (lowest age, highest age, share).
IMMIGRANT_AGES = ((0, 17, 0.20), (18, 29, 0.35), (30, 44, 0.30), (45, 66, 0.13), (67, 85, 0.02))
# Emigration per person-year by age band (edges in years); recent immigrants leave more often.
EMIGRATION_AGE_EDGES = np.array([0, 20, 40, 67])
EMIGRATION_RATE = np.array([0.003, 0.012, 0.003, 0.001])
EMIGRATION_IMMIGRANT_FACTOR = 3.0
MOVING_PER_PERSON_YEAR = 0.04  # moves between municipalities, effective 1 January

# Immigrants already living in Norway when the period starts (16.8 % of the population in
# 2024), by age band; they arrived at a uniformly drawn earlier age.
RESIDENT_IMMIGRANT_EDGES = np.array([0, 20, 60])
RESIDENT_IMMIGRANT_SHARE = np.array([0.06, 0.24, 0.08])
# Residents who only have a D-number (foreign workers registered without an FNR), ages 20-59.
RESIDENT_D_NUMBER_SHARE = 0.005
# New immigrants: most are first registered with a D-number; most of those later get an FNR.
NEW_IMMIGRANT_D_NUMBER_SHARE = 0.75
D_TO_FNR_SHARE = 0.80
D_TO_FNR_DELAY_DAYS = (30, 365)
FNR_CHANGES_PER_PERSON_YEAR = 0.0002  # corrected birth date or sex: a new FNR

# Marital status by age band: shares of ugift, gift, skilt, separert, enke, partner.
MARITAL_AGE_EDGES = np.array([0, 18, 30, 50, 67, 80])
MARITAL_SHARES = np.array(
    [
        [1.00, 0.00, 0.00, 0.00, 0.00, 0.00],
        [0.88, 0.10, 0.01, 0.01, 0.00, 0.00],
        [0.42, 0.46, 0.08, 0.03, 0.005, 0.005],
        [0.22, 0.52, 0.19, 0.03, 0.03, 0.01],
        [0.10, 0.55, 0.17, 0.02, 0.15, 0.01],
        [0.07, 0.35, 0.08, 0.01, 0.49, 0.00],
    ]
)

# --- chronic conditions ---------------------------------------------------------------------

# Prevalence by age band (0-17, 18-39, 40-59, 60-79, 80+), how much the condition multiplies a
# person's GP contacts, and the share of their GP contacts coded with it. Diabetes type 2
# (about 4.5 % of the population) raises GP use by 60 %.
CONDITION_AGE_EDGES = np.array([0, 18, 40, 60, 80])


@dataclass(frozen=True)
class Condition:
    name: str
    icpc2: str
    icd10: str  # as NPR writes it, without the dot
    prevalence: tuple[float, ...]  # by CONDITION_AGE_EDGES band
    gp_factor: float
    gp_share: float


CONDITIONS = (
    Condition("diabetes2", "T90", "E119", (0, 0.005, 0.04, 0.11, 0.13), 1.6, 0.35),
    Condition("diabetes1", "T89", "E109", (0.003, 0.005, 0.005, 0.004, 0.003), 1.5, 0.30),
    Condition("hypertension", "K86", "I10", (0, 0.02, 0.12, 0.35, 0.45), 1.2, 0.15),
    Condition("copd", "R95", "J449", (0, 0, 0.02, 0.06, 0.08), 1.3, 0.20),
    Condition("depression", "P76", "F329", (0.005, 0.06, 0.06, 0.05, 0.05), 1.5, 0.30),
    Condition("asthma", "R96", "J459", (0.06, 0.05, 0.05, 0.05, 0.05), 1.15, 0.15),
    Condition("atrial_fibrillation", "K78", "I489", (0, 0.001, 0.01, 0.06, 0.12), 1.2, 0.15),
    Condition("dementia", "P70", "F03", (0, 0, 0.001, 0.03, 0.15), 1.2, 0.15),
)
CONDITION_BIT = {c.name: 1 << i for i, c in enumerate(CONDITIONS)}
DIABETES = CONDITION_BIT["diabetes1"] | CONDITION_BIT["diabetes2"]

# --- KUHR -----------------------------------------------------------------------------------

# GP contacts: 16.9 M consultations in 2023 for 5.5 M people (DOMAIN.md), about 3 a
# person-year; 72 % had at least one. Relative rates by age band and sex (women see their GP
# more from their teens), times the conditions' factors, times a person's own propensity
# (gamma with this shape: most contacts come from a minority), scaled to the mean.
GP_CONTACTS_PER_PERSON_YEAR = 3.0
GP_AGE_EDGES = np.array([0, 5, 16, 30, 50, 67, 80])
GP_RELATIVE_RATE = {
    "M": np.array([2.4, 1.2, 1.5, 2.0, 2.9, 4.4, 5.6]),
    "K": np.array([2.2, 1.3, 3.2, 3.3, 3.6, 4.6, 5.8]),
}
GP_PROPENSITY_SHAPE = 1.1

# Emergency clinics (legevakt): 16 % of people a year (DOMAIN.md); users have 1 + Poisson(0.6)
# contacts. Relative chance by age band (small children and the old come more often).
LEGEVAKT_USER_SHARE = 0.16
LEGEVAKT_AGE_EDGES = np.array([0, 5, 16, 30, 67, 80])
LEGEVAKT_RELATIVE = np.array([1.8, 0.8, 1.2, 0.9, 1.2, 1.8])
LEGEVAKT_EXTRA_CONTACTS = 0.6

# Other KUHR providers: share of people who use them in a year by age band (0-15, 16-66,
# 67+) and the extra contacts a user has (count = 1 + Poisson(extra)).
OTHER_PROVIDERS = {
    "fysioterapeut": ((0.02, 0.08, 0.14), 7.0),
    "kiropraktor": ((0.0, 0.03, 0.015), 3.0),
    "psykolog": ((0.005, 0.025, 0.003), 6.0),
    "tannlege": ((0.0, 0.03, 0.05), 1.0),
}
PROVIDER_AGE_EDGES = np.array([0, 16, 67])

# Contact types per provider (konsultasjon, e-konsultasjon, sykebesok, telefon).
CONTACT_TYPE_SHARES = {
    "fastlege": (0.72, 0.12, 0.03, 0.13),
    "legevakt": (0.80, 0.0, 0.05, 0.15),
    "fysioterapeut": (0.97, 0.0, 0.03, 0.0),
    "kiropraktor": (1.0, 0.0, 0.0, 0.0),
    "psykolog": (0.85, 0.10, 0.0, 0.05),
    "tannlege": (1.0, 0.0, 0.0, 0.0),
}
OLD_GP_HOME_VISIT_SHARE = 0.10  # GP home visits (sykebesok) for people aged 80+

# Tariff codes: (provider, contact type) -> (day code, evening/night/weekend code). GP and
# emergency-clinic codes follow the Medical Association's fastlegetariff (2ad/2ak consultation,
# 2ae/2aek e-consultation, 1bd/1bk simple contact by phone or in writing, 11ad/11ak home visit;
# "d" = weekdays 08-16, "k" = evenings, nights, weekends). The others are illustrative.
TARIFFS = {
    ("fastlege", "konsultasjon"): ("2ad", "2ak"),
    ("fastlege", "e-konsultasjon"): ("2ae", "2aek"),
    ("fastlege", "sykebesok"): ("11ad", "11ak"),
    ("fastlege", "telefon"): ("1bd", "1bk"),
    ("legevakt", "konsultasjon"): ("2ad", "2ak"),
    ("legevakt", "sykebesok"): ("11ad", "11ak"),
    ("legevakt", "telefon"): ("1bd", "1bk"),
    ("fysioterapeut", "konsultasjon"): ("A2a", "A2a"),
    ("fysioterapeut", "sykebesok"): ("A2a A8", "A2a A8"),
    ("kiropraktor", "konsultasjon"): ("K1a", "K1a"),
    ("psykolog", "konsultasjon"): ("P11", "P11"),
    ("psykolog", "e-konsultasjon"): ("P11 P18", "P11 P18"),
    ("psykolog", "telefon"): ("P13", "P13"),
    ("tannlege", "konsultasjon"): ("101", "101"),
}
# Refund (NOK) per code; illustrative amounts of the right size.
REFUNDS = {
    "2ad": 157.0, "2ak": 213.0, "2ae": 157.0, "2aek": 203.0, "11ad": 265.0, "11ak": 420.0,
    "1bd": 72.0, "1bk": 89.0, "2dd": 52.0, "2cd": 41.0, "701a": 62.0,
    "A2a": 236.0, "A8": 160.0, "K1a": 176.0, "P11": 705.0, "P13": 160.0, "P18": 0.0, "101": 330.0,
}  # fmt: skip
# Add-on codes claimed with daytime GP/emergency-clinic consultations and home visits:
# specialist in general practice, extra time (over 20 minutes), taking blood samples.
ADD_ON_CODES = (("2dd", 0.70), ("2cd", 0.20), ("701a", 0.25))

# ICPC-2 diagnoses: (code, weight, factor for ages 0-15, 16-66, 67+, sex or None). Weights
# approximate the frequency order of the Directorate of Health's GP statistics (tiredness,
# respiratory infections, back pain, depression, diabetes, hypertension at the top).
ICPC2_AGE_EDGES = np.array([0, 16, 67])
GP_DIAGNOSES = (
    ("R74", 6.0, 3.0, 1.0, 0.6, None),
    ("A04", 5.0, 0.3, 1.0, 1.0, None),
    ("L03", 4.0, 0.1, 1.2, 0.8, None),
    ("P76", 3.0, 0.1, 1.1, 0.6, None),
    ("R05", 3.0, 2.0, 1.0, 1.0, None),
    ("A98", 3.0, 2.0, 1.0, 0.8, None),
    ("P74", 2.5, 0.3, 1.2, 0.5, None),
    ("A97", 2.5, 1.0, 1.0, 0.8, None),
    ("L84", 2.5, 0.1, 1.2, 0.9, None),
    ("L92", 2.0, 0.05, 1.2, 1.0, None),
    ("U71", 2.0, 0.5, 1.0, 1.3, "K"),
    ("R78", 2.0, 1.5, 1.0, 1.2, None),
    ("D73", 1.8, 2.5, 1.0, 0.7, None),
    ("K86", 1.5, 0.0, 0.6, 1.8, None),
    ("P06", 1.5, 0.3, 1.0, 1.2, None),
    ("L86", 1.5, 0.0, 1.1, 1.0, None),
    ("L15", 1.5, 0.5, 1.1, 1.0, None),
    ("L18", 1.5, 0.2, 1.1, 0.9, None),
    ("P02", 1.5, 0.2, 1.2, 0.4, None),
    ("H71", 1.5, 5.0, 0.3, 0.1, None),
    ("R96", 1.2, 1.5, 1.0, 0.8, None),
    ("S88", 1.2, 1.5, 1.0, 0.8, None),
    ("N01", 1.2, 0.8, 1.1, 0.6, None),
    ("D01", 1.2, 1.5, 1.0, 0.9, None),
    ("T90", 1.0, 0.0, 0.8, 1.5, None),
    ("T93", 1.0, 0.0, 0.8, 1.5, None),
    ("P29", 1.0, 0.3, 1.0, 0.8, None),
    ("L91", 1.0, 0.0, 0.6, 2.2, None),
    ("R75", 1.0, 0.5, 1.1, 0.7, None),
    ("R76", 1.0, 2.0, 1.0, 0.3, None),
    ("A77", 1.0, 2.0, 1.0, 0.6, None),
    ("W14", 1.0, 0.0, 1.5, 0.0, "K"),
    ("N89", 0.8, 0.3, 1.2, 0.3, None),
    ("T86", 0.8, 0.0, 1.0, 1.3, "K"),
    ("L90", 0.8, 0.0, 0.5, 2.0, None),
    ("W78", 0.8, 0.0, 1.5, 0.0, "K"),
    ("F70", 0.8, 3.0, 0.6, 0.6, None),
    ("A03", 0.8, 4.0, 0.5, 0.5, None),
    ("K78", 0.7, 0.0, 0.3, 2.5, None),
    ("R95", 0.6, 0.0, 0.4, 2.0, None),
    ("R80", 0.6, 1.0, 1.0, 1.0, None),
    ("S03", 0.6, 2.0, 1.0, 0.5, None),
    ("B80", 0.5, 0.3, 1.0, 1.2, None),
    ("Y85", 0.4, 0.0, 0.5, 2.5, "M"),
    ("P70", 0.3, 0.0, 0.0, 2.5, None),
)
LEGEVAKT_DIAGNOSES = (
    ("R74", 5.0, 2.0, 1.0, 0.6, None),
    ("A03", 4.0, 4.0, 0.5, 0.5, None),
    ("S18", 3.0, 1.5, 1.0, 0.8, None),
    ("L77", 3.0, 1.0, 1.2, 0.5, None),
    ("D73", 3.0, 2.0, 1.0, 0.8, None),
    ("D01", 3.0, 1.0, 1.0, 1.0, None),
    ("U71", 3.0, 0.5, 1.0, 1.5, "K"),
    ("H71", 3.0, 5.0, 0.3, 0.1, None),
    ("R78", 2.0, 1.5, 1.0, 1.5, None),
    ("A11", 2.0, 0.1, 1.0, 2.0, None),
    ("A80", 2.0, 1.0, 1.0, 1.0, None),
    ("L81", 2.0, 1.0, 1.0, 1.2, None),
    ("R05", 2.0, 2.0, 1.0, 1.0, None),
    ("P02", 1.5, 0.2, 1.2, 0.4, None),
    ("S16", 1.5, 1.5, 1.0, 1.2, None),
    ("N79", 1.0, 1.5, 1.0, 1.0, None),
    ("F70", 1.0, 2.0, 0.8, 0.8, None),
    ("S11", 1.0, 1.0, 1.0, 1.0, None),
)
PHYSIO_DIAGNOSES = (
    ("L03", 5.0, 0.3, 1.0, 1.0, None),
    ("L84", 4.0, 0.2, 1.0, 1.0, None),
    ("L86", 3.0, 0.1, 1.0, 1.0, None),
    ("L92", 3.0, 0.2, 1.0, 1.0, None),
    ("L15", 2.0, 1.0, 1.0, 1.0, None),
    ("L18", 2.0, 0.5, 1.0, 1.0, None),
    ("L02", 2.0, 0.5, 1.0, 1.0, None),
    ("L08", 2.0, 0.3, 1.0, 1.0, None),
    ("L90", 1.5, 0.0, 0.6, 2.0, None),
    ("L91", 1.5, 0.0, 0.6, 2.0, None),
    ("N89", 0.5, 0.5, 1.0, 0.5, None),
)
CHIROPRACTOR_DIAGNOSES = (
    ("L03", 5.0, 1.0, 1.0, 1.0, None),
    ("L84", 3.0, 1.0, 1.0, 1.0, None),
    ("L01", 3.0, 1.0, 1.0, 1.0, None),
    ("L02", 2.0, 1.0, 1.0, 1.0, None),
    ("L86", 2.0, 1.0, 1.0, 1.0, None),
)
PSYCHOLOGIST_DIAGNOSES = (
    ("P76", 5.0, 0.5, 1.0, 1.0, None),
    ("P74", 5.0, 1.0, 1.0, 1.0, None),
    ("P02", 2.0, 1.0, 1.0, 1.0, None),
    ("P29", 1.5, 1.5, 1.0, 1.0, None),
    ("P06", 1.0, 0.5, 1.0, 1.0, None),
    ("P82", 1.0, 0.5, 1.0, 1.0, None),
    ("P81", 1.0, 4.0, 0.5, 0.1, None),
    ("P86", 0.5, 2.0, 0.5, 0.1, "K"),
)
DENTIST_DIAGNOSES = (("D82", 4.0, 1.0, 1.0, 1.0, None), ("D19", 1.0, 1.0, 1.0, 1.0, None))

# Practices per municipality: one per this many inhabitants, at least one.
INHABITANTS_PER_PRACTICE = {
    "fastlege": 5000,
    "legevakt": 10**9,  # one emergency clinic per municipality
    "fysioterapeut": 6000,
    "kiropraktor": 20000,
    "psykolog": 15000,
    "tannlege": 12000,
}
PROVIDER_PREFIX = {
    "fastlege": "FL",
    "legevakt": "LV",
    "fysioterapeut": "FT",
    "kiropraktor": "KI",
    "psykolog": "PS",
    "tannlege": "TL",
}

# --- IPLOS ----------------------------------------------------------------------------------

# About 7 % of the population receive municipal care (399 000 in 2024, DOMAIN.md), mostly the
# old: relative chance by age band (0-17, 18-49, 50-66, 67-79, 80-89, 90+), dementia x5.
IPLOS_SHARE = 0.07
IPLOS_AGE_EDGES = np.array([0, 18, 50, 67, 80, 90])
IPLOS_RELATIVE = np.array([0.02, 0.03, 0.05, 0.15, 0.45, 0.85])
IPLOS_DEMENTIA_FACTOR = 5.0
IPLOS_YEARLY_ONSET = 0.20  # new recipients in the first year, relative to the prevalent ones
# Decisions per recipient: 1 + Poisson(1.2) (771 000 decisions for 349 000 recipients in 2015).
IPLOS_EXTRA_DECISIONS = 1.2
# Services: weights for (under 67, 67+); hours per week (median; None = no hours) and how
# long a short-term stay lasts.
IPLOS_SERVICES = (
    ("hjemmesykepleie", (3.0, 5.0), 4.0),
    ("praktisk_bistand", (2.0, 3.0), 2.5),
    ("sykehjem_langtid", (0.1, 1.2), None),
    ("sykehjem_korttid", (0.3, 1.0), None),
    ("trygghetsalarm", (0.3, 3.0), None),
    ("dagtilbud", (1.0, 0.6), 12.0),
    ("matombringing", (0.2, 1.0), None),
    ("omsorgslonn", (1.0, 0.1), 10.0),
)
IPLOS_SHORT_STAY_DAYS = (7, 42)
IPLOS_DECISION_END_SHARE = 0.15  # decisions other than short stays that end before death
IPLOS_NOT_RELEVANT_SHARE = 0.03  # score 9

# Historic IPLOS (§ 6-1): recipients before 2017 are in it from their first year of care.
HISTORIC_IPLOS_YEARS = (2006, 2016)
# How long ago prevalent recipients' care began: up to this many years (old), or since
# childhood for the young.
IPLOS_ONSET_YEARS_OLD = 12

# --- NPR ------------------------------------------------------------------------------------

# Share of people with specialist care in a year by age band (0-4, 5-15, 16-29, 30-49, 50-66,
# 67-79, 80+), times 1.3 per chronic condition; episodes per patient 1 + Poisson(1.3).
NPR_AGE_EDGES = np.array([0, 5, 16, 30, 50, 67, 80])
NPR_PATIENT_SHARE = np.array([0.30, 0.18, 0.22, 0.27, 0.36, 0.50, 0.58])
NPR_CONDITION_FACTOR = 1.3
NPR_EXTRA_EPISODES = 1.3
NPR_DEATH_IN_HOSPITAL_SHARE = 0.3  # of deaths: an inpatient stay ending that day
# Specialty weights for children (under 16) and adults.
NPR_SPECIALTY_WEIGHTS = {
    "child": {"pediatri": 0.5, "kirurgi": 0.15, "ortopedi": 0.15, "psykiatri": 0.1, "nevrologi": 0.05, "indremedisin": 0.05},
    "adult": {"indremedisin": 0.32, "kirurgi": 0.18, "ortopedi": 0.2, "nevrologi": 0.08, "psykiatri": 0.12, "gynekologi": 0.10},
}  # fmt: skip
# Care level shares (poliklinikk, dagbehandling, dognopphold) and mean inpatient stay (days).
NPR_CARE_LEVELS = {
    "indremedisin": ((0.72, 0.10, 0.18), 4),
    "kirurgi": ((0.60, 0.20, 0.20), 4),
    "ortopedi": ((0.65, 0.15, 0.20), 5),
    "nevrologi": ((0.75, 0.08, 0.17), 5),
    "psykiatri": ((0.85, 0.05, 0.10), 20),
    "pediatri": ((0.75, 0.08, 0.17), 3),
    "gynekologi": ((0.70, 0.12, 0.18), 3),
}
NPR_DIAGNOSES = {
    "indremedisin": (("I10", 2), ("I489", 2), ("I500", 1.5), ("I219", 1), ("E119", 2), ("J449", 1.5), ("J189", 1.5), ("N390", 1), ("K291", 1), ("D649", 1), ("R074", 2)),
    "kirurgi": (("K358", 1.5), ("K802", 2), ("K409", 2), ("C189", 1), ("C509", 1.5), ("K590", 1), ("R104", 2), ("L02", 1)),
    "ortopedi": (("S7200", 1.5), ("M171", 2), ("M161", 1.5), ("S525", 1.5), ("M545", 2), ("S8260", 1), ("M750", 1.5), ("S934", 1)),
    "nevrologi": (("I639", 2), ("G409", 1.5), ("G35", 1), ("G439", 1.5), ("G20", 1), ("R51", 1.5), ("G459", 1)),
    "psykiatri": (("F329", 3), ("F411", 2.5), ("F209", 1), ("F319", 1), ("F102", 1), ("F900", 1.5), ("F431", 2)),
    "pediatri": (("J219", 2), ("A090", 2), ("J459", 1.5), ("R509", 2), ("E109", 0.5), ("J069", 2), ("H669", 1.5)),
    "gynekologi": (("O800", 2), ("O479", 1), ("N920", 1.5), ("D259", 1.5), ("N832", 1), ("O021", 1), ("N390", 0.5)),
}  # fmt: skip
# Hospital trusts by county (the first two digits of the municipality number); one in this
# many episodes goes to Oslo universitetssykehus for regional and national functions.
HOSPITALS_BY_COUNTY = {
    "03": ("Oslo universitetssykehus HF", "Lovisenberg Diakonale Sykehus", "Diakonhjemmet Sykehus"),
    "11": ("Helse Stavanger HF", "Helse Fonna HF"),
    "15": ("Helse Møre og Romsdal HF",),
    "18": ("Nordlandssykehuset HF", "Helgelandssykehuset HF"),
    "31": ("Sykehuset Østfold HF",),
    "32": ("Akershus universitetssykehus HF", "Vestre Viken HF"),
    "33": ("Vestre Viken HF",),
    "34": ("Sykehuset Innlandet HF",),
    "39": ("Sykehuset i Vestfold HF",),
    "40": ("Sykehuset Telemark HF",),
    "42": ("Sørlandet sykehus HF",),
    "46": ("Helse Bergen HF", "Helse Fonna HF", "Helse Førde HF"),
    "50": ("St. Olavs hospital HF", "Helse Nord-Trøndelag HF"),
    "55": ("Universitetssykehuset Nord-Norge HF",),
    "56": ("Finnmarkssykehuset HF", "Universitetssykehuset Nord-Norge HF"),
}
REGIONAL_HOSPITAL = "Oslo universitetssykehus HF"
REGIONAL_SHARE = 0.08

# --- health centre and school health, maternity, dental (§ 2-2 opt-out services) -------------

# Health-centre and school-health contacts a year by age (0, 1, 2-5, 6-12, 13-19, 20-24):
# the child health programme's many first-year visits, then fewer.
HELSESTASJON_AGE_EDGES = np.array([0, 1, 2, 6, 13, 20, 25])
HELSESTASJON_CONTACTS = np.array([10.0, 4.0, 1.2, 0.6, 0.9, 0.2, 0.0])
HELSESTASJON_REASON_SHARE = 0.4  # contacts with a recorded reason (else routine, none)
HELSESTASJON_REASONS = (
    ("A98", 6.0), ("R74", 1.0), ("H71", 1.0), ("S88", 0.8), ("D73", 0.6), ("T83", 0.5),
    ("P22", 0.6), ("P74", 0.5), ("P76", 0.4), ("W14", 0.3),
)  # fmt: skip
# Growth: median height (cm) by age in years, and median BMI; 4 % and 12 % spread.
GROWTH_AGES = np.array([0, 0.5, 1, 2, 4, 6, 10, 13, 16, 19, 25])
GROWTH_HEIGHT = {
    "M": np.array([51, 68, 76, 88, 104, 118, 140, 158, 175, 180, 180]),
    "K": np.array([50, 66, 74, 86, 103, 117, 139, 157, 165, 167, 167]),
}
GROWTH_BMI = np.array([13.5, 17.0, 17.2, 16.3, 15.6, 15.4, 17.0, 18.7, 20.5, 22.0, 23.0])

# Pregnancies per woman-year by age at conception (age-specific fertility around 2023, total
# fertility 1.40): 15-19, 20-24, 25-29, 30-34, 35-39, 40-44, 45-49.
FERTILITY_AGE_EDGES = np.array([15, 20, 25, 30, 35, 40, 45, 50])
FERTILITY = np.array([0.003, 0.030, 0.085, 0.110, 0.060, 0.012, 0.001, 0.0])
MATERNITY_VISITS = 8  # plus Poisson(1), between gestational weeks 6 and 40
PREECLAMPSIA_SHARE = 0.03

# Public dental service: children and young people (0-20) are called in regularly; old
# people with home nursing or in nursing homes too; few other adults.
DENTAL_AGE_EDGES = np.array([0, 3, 21])
DENTAL_SHARE = np.array([0.1, 0.65, 0.02])
DENTAL_CARE_SHARE = 0.5
DENTAL_EXTRA_CONTACTS = 0.4

# --- SES ------------------------------------------------------------------------------------

EDUCATION_LEVELS = ("grunnskole", "videregaende", "hoyere_kort", "hoyere_lang", "ukjent")
# Highest education reached (for ages 25+) by age band (25-74, 75+) and for immigrants.
EDUCATION_SHARES = {
    "younger": (0.22, 0.38, 0.25, 0.11, 0.04),
    "older": (0.40, 0.38, 0.15, 0.05, 0.02),
    "immigrant": (0.20, 0.25, 0.18, 0.12, 0.25),
}
EMPLOYMENTS = ("ansatt", "arbeidsledig", "student", "pensjonist", "ufor", "annet")
EMPLOYMENT_AGE_EDGES = np.array([16, 20, 25, 30, 62, 67])
EMPLOYMENT_SHARES = np.array(
    [
        [0.30, 0.00, 0.65, 0.00, 0.00, 0.05],
        [0.55, 0.04, 0.35, 0.00, 0.02, 0.04],
        [0.75, 0.04, 0.12, 0.00, 0.03, 0.06],
        [0.80, 0.03, 0.02, 0.00, 0.10, 0.05],
        [0.55, 0.02, 0.00, 0.25, 0.13, 0.05],
        [0.07, 0.00, 0.00, 0.93, 0.00, 0.00],
    ]
)
SES_MIN_AGE = 16

# --- reservations and the consent-based register -------------------------------------------

# Each kind of opt-out for about 1.5 % of people (DOMAIN.md asks for 1-2 %), 0.6 % both; one in
# five later deactivates.
RESERVATION_BOTH = 0.006
RESERVATION_ONE = 0.009  # each kind alone
RESERVATION_DEACTIVATE_SHARE = 0.2

# The consent-based diabetes register: share of diabetics registered, share of those who
# consented, share who later withdraw; visits a year 1 + Poisson(0.3).
QUALITY_REGISTER_ENROLLED = 0.70
QUALITY_REGISTER_CONSENT = 0.92
QUALITY_REGISTER_WITHDRAW = 0.03
QUALITY_REGISTER_EXTRA_VISITS = 0.3
