// Keys and answers of the answer cache's tests: each key's answer is a length and bytes
// of its own, so an answer served for the wrong key, or torn by a writer, shows.
export function keyFor(n: number): Buffer {
  return Buffer.from(`key-${n}.web.default.cf.bosh`);
}

export function answerFor(n: number): Buffer {
  const answer = Buffer.alloc(24 + (n % 400));
  for (let i = 0; i < answer.length; i++) answer[i] = (n * 31 + i) & 0xff;
  return answer;
}
