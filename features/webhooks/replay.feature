# SPEC §6. A provider retries until it hears success, replays happen, and attackers forge: each genuine provider
# event must move money exactly once, and a forged one never. Rule ids and threat ids are tags: a scenario's
# check in the report traces to the rule ids of its feature and its own.
#
# Every Given and When step is one step of the reference model's vocabulary, sent to the model and the target
# side by side: each request is compared, and the ledger invariants are checked after each. The Then steps hold
# the claims below against the model's prediction and against what the target answered and booked.
@webhooks @T04
Feature: SHKeeper payment callbacks move money once

  Background:
    Given a buyer's escrow of 100 USD paid through SHKeeper
    And the buyer has started the payment

  @WH-3 @WH-4 @LED-6
  Scenario: A genuine payment delivered twice funds the escrow once
    When SHKeeper delivers payment event 1 for the amount due
    And SHKeeper delivers the same event again
    Then the target agrees with the model on every request
    And the escrow is funded
    And the escrow has 1 payment entry in the ledger

  @WH-4 @LED-6 @ESC-3 @ESC-4
  Scenario: Two transactions on one invoice are two events, each applied once
    When SHKeeper delivers payment event 1 for half the amount due
    And SHKeeper delivers the same event again
    And SHKeeper delivers payment event 2 for half the amount due
    Then the target agrees with the model on every request
    And the escrow is funded
    And the escrow has 2 payment entries in the ledger

  @WH-1 @WH-5 @T03
  Scenario: A forged delivery is refused, kept as a dead letter, and moves nothing
    When a forger delivers payment event 1 for the amount due with a wrong signature
    Then the target agrees with the model on every request
    And the delivery is refused as unauthenticated
    And 1 delivery is kept as a dead letter
    And the escrow is awaiting_payment
    And the escrow has 0 payment entries in the ledger
