// The parts of the npm age-encryption package the approval page uses:
// unwrap the passphrase-wrapped identity (scrypt), check it is the PD's
// (its recipient), and seal the envelope to the agent's X25519 recipient,
// armored.
export { Decrypter, Encrypter, armor, identityToRecipient } from "age-encryption";
