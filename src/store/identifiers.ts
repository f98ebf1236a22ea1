import type { IdentifierFinding } from './errors.ts'
import { MAX_VALUE_CHARS } from './values.ts'

/**
 * Direct identifiers, as GB/T 35273 lists them (identity card and passport numbers, phone numbers,
 * names, addresses, precise locations and trajectories, e-mail), found by a column's name, in English,
 * pinyin or Chinese, and by a value's content. A column found either way is refused unless the schema
 * drops or hashes it.
 */

/** Column names split into lower-case words: `patientName`, `patient_name`, `Patient Name` → patient, name. */
function words (column: string): string[] {
  return column.normalize('NFKC')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9\p{Script=Han}]+/u)
    .filter((word) => word !== '')
}

/** Whole names (words joined) that are identifiers. */
const EXACT = new Set([
  // identity documents
  'idcard', 'idcardno', 'idcardnumber', 'idnumber', 'idno', 'idnum', 'identitycard', 'identitynumber', 'identityno',
  'nationalid', 'nationalidnumber', 'residentid', 'residentidnumber', 'citizenid', 'ssn', 'socialsecuritynumber',
  'passport', 'passportno', 'passportnumber', 'shenfenzheng', 'shenfenzhenghao', 'shenfenzhenghaoma', 'sfz', 'sfzh',
  'sfzhm', 'zjhm', 'zhengjianhaoma',
  // names
  'name', 'fullname', 'firstname', 'lastname', 'surname', 'givenname', 'familyname', 'middlename', 'maidenname',
  'nickname', 'xingming', 'mingzi', 'huanzhexingming',
  // phone
  'tel', 'telno', 'fax', 'contactnumber', 'contactno', 'shouji', 'shoujihao', 'shoujihaoma', 'dianhua', 'lianxidianhua',
  'dianhuahaoma', 'lianxifangshi',
  // address, location
  'addr', 'zhuzhi', 'dizhi', 'jiatingzhuzhi', 'xianzhuzhi', 'lat', 'lon', 'lng', 'guiji',
  // e-mail, messaging accounts, bank cards
  'mail', 'youxiang', 'wechat', 'weixin', 'wxid', 'qq', 'bankcard', 'bankcardno', 'bankaccount', 'yinhangka'
])

/** Words that make a column an identifier wherever they occur in its name. */
const WORDS = new Set([
  'passport', 'ssn', 'shenfenzheng', 'sfz', 'idcard', 'phone', 'telephone', 'mobile', 'cellphone', 'tel', 'fax', 'phoneno',
  'mobileno', 'telno', 'address', 'addr', 'street', 'residence', 'domicile', 'gps', 'latitude', 'longitude', 'lat', 'lon',
  'lng', 'trajectory', 'itinerary', 'track', 'geolocation', 'coordinates', 'email', 'mail', 'wechat', 'weixin', 'qq'
])

/** Words that, beside "name", make it a person's name (`county_name` is not one). */
const PERSON = new Set([
  'patient', 'person', 'case', 'client', 'contact', 'guardian', 'parent', 'mother', 'father', 'spouse', 'child', 'owner',
  'full', 'first', 'last', 'given', 'family', 'middle', 'maiden', 'nick', 'sur', 'real', 'legal', 'english', 'chinese',
  'pinyin', 'his', 'her', 'my', 'of', 'the'
])

/** Chinese terms that make a column an identifier wherever they occur in its name. */
const CHINESE = ['姓名', '名字', '身份证', '证件号', '护照', '手机', '电话', '联系方式', '联系人', '住址', '地址', '邮箱', '电子邮件', '电邮', '微信', '银行卡', '车牌', '轨迹', '行程', '经度', '纬度', '定位']

export function identifierByName (column: string): boolean {
  const normalized = column.normalize('NFKC')
  if (CHINESE.some((term) => normalized.includes(term))) return true
  const list = words(normalized)
  const joined = list.join('')
  if (EXACT.has(joined)) return true
  if (joined.includes('phone') || joined.includes('email') || joined.includes('address') || joined.includes('passport')) return true
  if (list.some((word) => WORDS.has(word))) return true
  // "id card", "identity number", "id no"
  for (let index = 0; index + 1 < list.length; index++) {
    if ((list[index] === 'id' || list[index] === 'identity') && ['card', 'number', 'no', 'num'].includes(list[index + 1] as string)) return true
  }
  return list.includes('name') && list.every((word) => word === 'name' || PERSON.has(word))
}

/** Whether `yyyymmdd` is a real calendar date from 1850 to 2099. */
function isBirthDate (year: number, month: number, day: number): boolean {
  if (year < 1850 || year > 2099 || month < 1 || month > 12 || day < 1) return false
  return day <= new Date(Date.UTC(year, month, 0)).getUTCDate()
}

/**
 * The shape of a Chinese resident identity number, whatever its check character: 18 characters (a
 * region code starting 1 to 8, a birth date YYYYMMDD, a sequence, a check digit or X) or the old 15
 * digits (birth date YYMMDD, 19YY).
 */
export function hasResidentIdShape (compact: string): boolean {
  if (/^[1-8]\d{5}\d{8}\d{3}[\dXx]$/.test(compact)) return isBirthDate(Number(compact.slice(6, 10)), Number(compact.slice(10, 12)), Number(compact.slice(12, 14)))
  if (/^[1-8]\d{14}$/.test(compact)) return isBirthDate(1900 + Number(compact.slice(6, 8)), Number(compact.slice(8, 10)), Number(compact.slice(10, 12)))
  return false
}

/** An 18-character resident identity number whose check character (ISO 7064 MOD 11-2) is valid. */
export function isResidentIdNumber (value: string): boolean {
  if (!/^\d{17}[\dXx]$/.test(value)) return false
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
  const sum = weights.reduce((total, weight, index) => total + weight * Number(value[index]), 0)
  return '10X98765432'[sum % 11] === value[17]?.toUpperCase()
}

// Every pattern here runs in time linear in the value (bounded repetitions, no nested quantifiers
// over the same characters): the values come from the file.
const EMAIL = /[\p{L}\p{N}._%+-]{1,64}@[\p{L}\p{N}-]{1,63}(?:\.[\p{L}\p{N}-]{1,63}){0,8}\.\p{L}{2,24}/u
/** Digits with the spacing people write numbers with: spaces, hyphens, parentheses, a plus */
const NUMBER_LIKE = /^[\d\s()+-]*[Xx]?$/
const MOBILE_CN = /^(?:\+?86|0086)?1[3-9]\d{9}$/
const E164 = /^\+[1-9]\d{9,14}$/
/** a Chinese landline with its area code, written with a separator or parentheses after it */
const LANDLINE_CN = /^0[1-9]\d{8,10}$/
const ID_IN_TEXT = /(?<![\dA-Za-z])(?:\d{17}[\dXx]|\d{15})(?![\dA-Za-z])/g
const MOBILE_IN_TEXT = /(?<![\d+])(?:(?:\+|00)?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}(?!\d)/

/**
 * The kind of direct identifier a value is or contains, or null. A whole value is read with any
 * spacing (`110101 19900307 123X`, `+86 138-1234-5678`, `(010) 6512 3456`); inside longer text only
 * unbroken identity numbers, mobile numbers (in 3-4-4 groups or unbroken) and e-mail addresses count.
 * Ordinary measurements, counts and dates are none of these: a number with a decimal point or a
 * leading minus is never read as one, and 8-digit dates are too short. Values longer than
 * MAX_VALUE_CHARS are refused for their length wherever they would be stored, and not read here.
 */
export function identifierInValue (raw: string): IdentifierFinding['kind'] | null {
  // longer values are never stored (see values.ts), so need no screening
  if (raw.length < 6 || raw.length > MAX_VALUE_CHARS) return null
  const value = raw.normalize('NFKC').trim()
  if (value.includes('@') && EMAIL.test(value)) return 'EMAIL'
  if (value.length <= 40 && NUMBER_LIKE.test(value) && /\d/.test(value)) {
    if (value.startsWith('-')) return null
    const compact = value.replace(/[\s()-]/g, '')
    if (hasResidentIdShape(compact)) return 'RESIDENT_ID'
    if (MOBILE_CN.test(compact)) return 'MOBILE'
    if (E164.test(compact)) return 'PHONE'
    if (LANDLINE_CN.test(compact) && /^\(?0\d{1,3}[\s)-]/.test(value)) return 'PHONE'
    return null
  }
  for (const match of value.matchAll(ID_IN_TEXT)) if (hasResidentIdShape(match[0])) return 'RESIDENT_ID'
  if (MOBILE_IN_TEXT.test(value)) return 'MOBILE'
  return null
}
